"""Subresources with their own semantics: scale, binding, eviction, log, token, finalize,
plus the virtual review resources (computed per request, never stored)."""

from __future__ import annotations

import copy
import ssl

import aiohttp
from aiohttp import web

from bootstrap.api import errors, selectors
from bootstrap.api.resources import by_gvr

from ..requestinfo import RequestInfo
from . import common, crud, output, streaming


async def dispatch(server, request: web.Request, info: RequestInfo, user) -> web.StreamResponse:
    sub, verb, res = info.subresource, info.verb, info.resource
    if sub not in res.subresources:
        raise errors.APIError(404, "NotFound", "the server could not find the requested "
                                               "resource")
    if sub in ("status", "approval"):
        if verb == "get":
            return await crud.get(server, request, info, user)
        if verb == "update":
            return await crud.update(server, request, info, user)
        if verb == "patch":
            return await crud.patch(server, request, info, user)
    elif sub == "scale" and server.registry.strategy(res).scalable:
        if verb == "get":
            obj = await server.registry.get(res, info.namespace, info.name)
            return common.json_response(server.registry.strategy(res).scale(obj))
        if verb == "update":
            return await _update_scale(server, request, info, user)
        if verb == "patch":
            return await _patch_scale(server, request, info, user)
    elif sub == "binding" and verb == "create":
        body = await common.read_body(request, "Binding")
        return await bind(server, request, info.namespace, info.name, body, user)
    elif sub == "eviction" and verb == "create":
        return await evict(server, request, info, user)
    elif sub == "log" and verb == "get":
        return await pod_log(server, request, info)
    elif sub == "token" and verb == "create":
        return await token(server, request, info, user)
    elif sub == "finalize" and verb == "update":
        return await finalize(server, request, info, user)
    elif sub in streaming.POD_STREAMS and res.plural == "pods":
        return await streaming.pod_stream(server, request, info, user)
    elif sub == "proxy" and res.plural == "nodes":
        return await streaming.node_proxy(server, request, info, user)
    raise errors.method_not_supported(f"{res.plural}/{sub}", verb, res.group)


async def _update_scale(server, request, info, user):
    body = await common.read_body(request, "Scale")
    replicas = (body.get("spec") or {}).get("replicas")
    return await _set_replicas(server, request, info, user, replicas,
                               (body.get("metadata") or {}).get("resourceVersion"))


async def _set_replicas(server, request, info, user, replicas, rv=None):
    res = info.resource
    if not isinstance(replicas, int) or replicas < 0:
        raise errors.invalid("Scale", info.name, [errors.invalid_value(
            "spec.replicas", replicas, "must be greater than or equal to 0")], "autoscaling")
    ctx = crud.ctx_for(request, user)

    async def compute(current: dict) -> dict:
        server.registry.strategy(res).set_replicas(current, replicas)
        return current

    obj = await server.registry.update(res, info.namespace, info.name, compute, ctx,
                                       precondition_rv=rv or None)
    return common.json_response(server.registry.strategy(res).scale(obj))


async def _patch_scale(server, request, info, user):
    res = info.resource
    ctype, body = crud.parse_patch(request, await common.read_raw(request))
    ctx = crud.ctx_for(request, user, info.subresource)
    current = await server.registry.get(res, info.namespace, info.name)
    scale = server.registry.strategy(res).scale(current)
    patched = crud.apply_patch(ctype, body, scale, res, ctx, False,
                               gvk=("autoscaling", "v1", "Scale"))
    return await _set_replicas(server, request, info, ctx.user,
                               (patched.get("spec") or {}).get("replicas"))


async def bind(server, request, namespace: str, name: str, body: dict, user):
    """pods/binding: set spec.nodeName once; a bound pod is a 409 Conflict."""
    target = (body.get("target") or {}).get("name")
    if not target:
        raise errors.invalid("Binding", name, [errors.required("target.name")])
    pods = by_gvr("", "v1", "pods")
    ctx = crud.ctx_for(request, user)

    async def compute(current: dict) -> dict:
        if (current.get("spec") or {}).get("nodeName"):
            raise errors.conflict("pods/binding", name, "",
                                  f"pod {name} is already assigned to node "
                                  f"\"{current['spec']['nodeName']}\"")
        if current["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods/binding", name, "",
                                  f"pod {name} is being deleted, cannot be assigned to a host")
        current["spec"]["nodeName"] = target
        anns = (body.get("metadata") or {}).get("annotations")
        if anns:
            current["metadata"].setdefault("annotations", {}).update(anns)
        conds = current.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True",
                      "lastProbeTime": None, "lastTransitionTime": _now()})
        return current

    # Binding writes spec and status, so it bypasses the main endpoint's status rule.
    ctx.subresource = "binding"
    await server.registry.update(pods, namespace, name, compute, ctx)
    return common.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                 "status": "Success", "code": 201}, status=201)


def _now() -> str:
    from bootstrap.api import meta
    return meta.now_rfc3339()


async def evict(server, request, info, user):
    """policy/v1 Eviction as upstream's EvictionREST: pods that are pending, finished
    or already terminating go at once; otherwise the one PDB selecting the pod must
    allow a disruption, which is taken (disruptionsAllowed-1, the pod recorded in
    disruptedPods for the disruption controller) before the pod is deleted."""
    body = await common.read_body(request, "Eviction")
    pods = info.resource
    pod = await server.registry.get(pods, info.namespace, info.name)
    options = body.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise errors.bad_request("deleteOptions must be an object")
    ctx = crud.ctx_for(request, user)
    ctx.dry_run = common.dry_run(request, options)
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    if phase not in ("Pending", "Succeeded", "Failed") and \
            not pod["metadata"].get("deletionTimestamp"):
        await _take_disruption(server, request, info, user, pod, ctx)
    await server.registry.delete(pods, info.namespace, info.name, ctx, options)
    return common.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                 "status": "Success", "code": 201}, status=201)


_PDBS = ("policy", "v1", "poddisruptionbudgets")
_MAX_DISRUPTED_PODS = 2000


async def _take_disruption(server, request, info, user, pod: dict, ctx) -> None:
    """checkAndDecrement on the pod's PodDisruptionBudget (if any)."""
    pdb_res = by_gvr(*_PDBS)
    pdbs, _, _, _ = await server.registry.list(pdb_res, info.namespace, rv="0")
    labels = pod["metadata"].get("labels") or {}
    matching = [p for p in pdbs if selectors.label_selector_from_dict(
        (p.get("spec") or {}).get("selector")).matches(labels)]
    if not matching:
        return
    if len(matching) > 1:
        raise errors.internal_error("This pod has more than one PodDisruptionBudget, which "
                                    "the eviction subresource does not support.")
    pdb = matching[0]
    pdb_name = pdb["metadata"]["name"]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or [])
    status = pdb.get("status") or {}
    if not ready:
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
        healthy, desired = status.get("currentHealthy", 0), status.get("desiredHealthy", 0)
        if policy == "AlwaysAllow" or (desired > 0 and healthy >= desired):
            return  # an unready pod adds nothing to the budget's health

    async def compute(current: dict) -> dict:
        st = current.setdefault("status", {})
        if st.get("observedGeneration", 0) < current["metadata"].get("generation", 1):
            raise _budget_violation(f"The disruption budget {pdb_name} is still being "
                                    "processed by the server.")
        allowed = st.get("disruptionsAllowed", 0)
        if allowed < 0:
            raise errors.forbidden_message("poddisruptionbudgets", pdb_name,
                                           "pdb disruptions allowed is negative", "policy")
        if len(st.get("disruptedPods") or {}) > _MAX_DISRUPTED_PODS:
            raise errors.forbidden_message("poddisruptionbudgets", pdb_name,
                                           "DisruptedPods map too big - too many evictions not "
                                           "confirmed by PDB controller", "policy")
        if allowed == 0:
            raise _budget_violation(
                f"The disruption budget {pdb_name} needs {st.get('desiredHealthy', 0)} "
                f"healthy pods and has {st.get('currentHealthy', 0)} currently")
        st["disruptionsAllowed"] = allowed - 1
        st.setdefault("disruptedPods", {})[info.name] = _now()
        return current

    if ctx.dry_run:
        await compute(copy.deepcopy(pdb))
        return
    from dataclasses import replace
    await server.registry.update(pdb_res, info.namespace, pdb_name, compute,
                                 replace(ctx, subresource="status"))


def _budget_violation(cause: str) -> errors.APIError:
    # Upstream: NewTooManyRequests(..., 0) plus a DisruptionBudget cause.
    return errors.APIError(429, "TooManyRequests",
                           "Cannot evict pod as it would violate the pod's disruption budget.",
                           {"causes": [{"reason": "DisruptionBudget", "message": cause}]})


async def pod_log(server, request, info):
    """pods/log: proxy to the kubelet on the pod's node with the kubelet-client cert."""
    pod = await server.registry.get(info.resource, info.namespace, info.name)
    node_name = (pod.get("spec") or {}).get("nodeName")
    container = streaming.validate_container(pod, request.query.get("container"))
    if not node_name:
        # Upstream's LogLocation has no location then, and the log is an empty stream.
        return web.Response(status=200, body=b"", content_type="text/plain")
    base = await streaming.kubelet_base(server, node_name)
    params = {k: v for k, v in request.query.items()
              if k in ("follow", "previous", "sinceSeconds", "sinceTime", "timestamps",
                       "tailLines", "limitBytes")}
    url = f"{base}/containerLogs/{info.namespace}/{info.name}/{container}"
    sslctx = server.kubelet_ssl_context()
    try:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None,
                                                                      sock_connect=5))
        upstream = await session.get(url, params=params, ssl=sslctx or False)
    except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
        await session.close()
        raise errors.internal_error(f"Get \"{url}\": {exc}") from None
    if not 200 <= upstream.status <= 206:
        body = await upstream.content.read(streaming.MAX_ERROR_BODY)
        upstream.release()
        await session.close()
        raise streaming.kubelet_error(upstream.status, body, "pods/log", info.name)
    try:
        resp = web.StreamResponse(status=upstream.status,
                                  headers={"Content-Type": upstream.headers.get(
                                      "Content-Type", "text/plain")})
        await resp.prepare(request)
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        upstream.release()
        await session.close()


async def token(server, request, info, user):
    from .. import admission, serviceaccount
    body = await common.read_body(request, "TokenRequest")
    sa = await server.registry.get(info.resource, info.namespace, info.name)
    # NodeRestriction decides which pods a kubelet may mint tokens for.
    await admission.admit("CREATE", info.resource, body, None, user, server.auth_store,
                          subresource="token", namespace=info.namespace, name=info.name,
                          enabled=server.cfg.admission_plugins)
    if server.sa_signing_key is None:
        raise errors.internal_error("--service-account-signing-key-file is not configured")
    out = await serviceaccount.token_request(sa, body, server.auth_store, server.sa_signing_key,
                                             server.sa_issuer, server.api_audiences)
    return common.json_response(out, status=201)


async def finalize(server, request, info, user):
    """namespaces/<n>/finalize: the only way to change spec.finalizers."""
    body = await common.read_body(request, "Namespace")
    ctx = crud.ctx_for(request, user, "finalize")
    wanted = copy.deepcopy((body.get("spec") or {}).get("finalizers") or [])

    async def compute(current: dict) -> dict:
        current.setdefault("spec", {})["finalizers"] = wanted
        return current

    obj = await server.registry.update(info.resource, None, info.name, compute, ctx)
    return output.object_response(request, info.resource, obj)


async def review(server, request: web.Request, info: RequestInfo, user) -> web.Response:
    """POST of a virtual review resource."""
    from ..auth import reviews
    body = await common.read_body(request, info.resource.kind)
    plural = info.resource.plural
    if plural == "selfsubjectaccessreviews":
        out = await reviews.self_subject_access_review(body, user, server.authorizer)
    elif plural == "subjectaccessreviews":
        out = await reviews.subject_access_review(body, server.authorizer)
    elif plural == "localsubjectaccessreviews":
        out = await reviews.local_subject_access_review(body, info.namespace, server.authorizer)
    elif plural == "selfsubjectrulesreviews":
        out = await reviews.self_subject_rules_review(body, user, server.authorizer)
    elif plural == "tokenreviews":
        out = await reviews.token_review(body, server.authenticator)
    elif plural == "selfsubjectreviews":
        out = reviews.self_subject_review(user)
    elif plural == "bindings":
        name = (body.get("metadata") or {}).get("name", "")
        return await bind(server, request, info.namespace, name, body, user)
    else:
        raise errors.method_not_supported(plural, "create", info.resource.group)
    return common.json_response(out, status=201)
