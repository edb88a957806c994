"""Admission webhooks: MutatingAdmissionWebhook and ValidatingAdmissionWebhook.

Each request that reaches the end of the built-in admission chain is sent, as an
admission.k8s.io/v1 AdmissionReview over HTTPS, to every webhook of the
admissionregistration.k8s.io/v1 configurations whose rules and selectors match
it: mutating webhooks one after another (their JSONPatch responses applied in
turn, with one reinvocation round for ``reinvocationPolicy: IfNeeded``), then
validating webhooks concurrently. Configurations are read from the watch cache
(the AuthStore), never from etcd per request. Semantics and messages follow
upstream's k8s.io/apiserver webhook dispatchers.

``clientConfig.service`` resolves to a ready address and port of the Service's
EndpointSlices (the Service's ClusterIP is only routable through a node's proxy,
which the API server host may not run); TLS is verified against ``caBundle`` for
the name ``<service>.<namespace>.svc``, as upstream. ``matchConditions`` (CEL) are
not evaluated: a webhook that has them fails as a call error, so its failurePolicy
decides. With one served version per resource, ``matchPolicy`` Equivalent and
Exact match the same requests.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
import uuid
from dataclasses import dataclass

import aiohttp

from bootstrap.api import errors, patch
from bootstrap.api.selectors import label_selector_from_dict

from . import services

ADMISSION_V1 = "admission.k8s.io/v1"
DEFAULT_TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 3 * 1024 * 1024
# Requests on the admission configurations themselves never go to webhooks, so a
# broken webhook cannot lock the cluster out of fixing it (upstream's
# IsExemptAdmissionConfigurationResource).
_EXEMPT = {("admissionregistration.k8s.io", p) for p in (
    "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
    "validatingadmissionpolicies", "validatingadmissionpolicybindings")}
_OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions",
                 "DELETE": "DeleteOptions", "CONNECT": ""}


class CallError(Exception):
    """Upstream's ErrCallingWebhook: the webhook could not give an answer; the
    webhook's failurePolicy decides whether the request fails."""

    def __init__(self, webhook: str, reason: str):
        super().__init__(f'failed calling webhook "{webhook}": {reason}')


@dataclass(frozen=True)
class Hook:
    configuration: str
    spec: dict
    index: int

    @property
    def name(self) -> str:
        return self.spec.get("name", "")

    @property
    def uid(self) -> tuple[str, int]:
        return self.configuration, self.index

    @property
    def ignore_failures(self) -> bool:
        return self.spec.get("failurePolicy", "Fail") == "Ignore"


# -- matching ---------------------------------------------------------------------

def _kind_of(a) -> tuple[str, str, str]:
    """The group, version, kind of the object the request carries."""
    if a.subresource == "scale":
        return "autoscaling", "v1", "Scale"
    if a.subresource and isinstance(a.obj, dict) and a.obj.get("kind"):
        gv = a.obj.get("apiVersion", "")
        group, _, version = gv.rpartition("/")
        return group, version, a.obj["kind"]
    r = a.resource
    return r.group, r.version, r.kind


def rule_matches(rule: dict, a) -> bool:
    r = a.resource
    ops = rule.get("operations") or []
    if "*" not in ops and a.op not in ops:
        return False
    if not _listed(rule.get("apiGroups"), r.group) or \
            not _listed(rule.get("apiVersions"), r.version):
        return False
    scope = rule.get("scope") or "*"
    if scope == "Cluster" and r.namespaced or scope == "Namespaced" and not r.namespaced:
        return False
    for entry in rule.get("resources") or []:
        # "pods" is the resource alone, "pods/*" its subresources only, "*/*" everything.
        res, _, sub = entry.partition("/")
        if res not in ("*", r.plural):
            continue
        if (sub == a.subresource) or (sub == "*" and (a.subresource or res == "*")):
            return True
    return False


def _listed(values, value: str) -> bool:
    values = values or []
    return "*" in values or value in values


def _labels(obj: dict | None) -> dict | None:
    return None if obj is None else (obj.get("metadata") or {}).get("labels") or {}


async def _namespace_matches(hook: Hook, a) -> bool:
    spec = hook.spec.get("namespaceSelector")
    if spec is None or spec == {}:
        return True
    selector = label_selector_from_dict(spec)
    r = a.resource
    if r.gvr == ("", "v1", "namespaces"):
        labels = _labels(a.obj) if a.obj is not None else _labels(a.old)
        return selector.matches(labels or {})
    if not r.namespaced:
        return True  # cluster-scoped objects are not in a namespace to select on
    ns = await a.store.get("namespaces", None, a.namespace)
    return selector.matches(_labels(ns) or {})


def _object_matches(hook: Hook, a) -> bool:
    spec = hook.spec.get("objectSelector")
    if spec is None or spec == {}:
        return True
    selector = label_selector_from_dict(spec)
    return any(labels is not None and selector.matches(labels)
               for labels in (_labels(a.obj), _labels(a.old)))


async def matching(a, plural: str) -> list[Hook]:
    """The webhooks of every ``plural`` configuration that apply to the request, in
    upstream's order (configurations by name, webhooks as listed)."""
    if (a.resource.group, a.resource.plural) in _EXEMPT:
        return []
    configs = sorted(await a.store.list(plural), key=lambda c: c["metadata"]["name"])
    out = []
    for config in configs:
        for i, spec in enumerate(config.get("webhooks") or []):
            hook = Hook(config["metadata"]["name"], spec, i)
            if not any(rule_matches(rule, a) for rule in spec.get("rules") or []):
                continue
            try:
                if not _object_matches(hook, a) or not await _namespace_matches(hook, a):
                    continue
            except ValueError as exc:
                raise errors.internal_error(
                    f'failed calling webhook "{hook.name}": invalid selector: {exc}') from None
            out.append(hook)
    return out


# -- calling ----------------------------------------------------------------------

_SSL_CACHE: dict[str, ssl.SSLContext] = {}
# One client session per event loop, so calls reuse TLS connections as upstream's
# client does. aiohttp pools connections by host, port, SSL context and server name,
# so a connection verified with one webhook's caBundle never serves another's.
_SESSIONS: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    s = _SESSIONS.get(loop)
    if s is None or s.closed:
        s = _SESSIONS[loop] = aiohttp.ClientSession()
    return s


async def close() -> None:
    """Close this event loop's webhook client session (the server's shutdown)."""
    s = _SESSIONS.pop(asyncio.get_running_loop(), None)
    if s is not None:
        await s.close()


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    key = ca_bundle or ""
    ctx = _SSL_CACHE.get(key)
    if ctx is None:
        if ca_bundle:
            pem = base64.b64decode(ca_bundle).decode()
            ctx = ssl.create_default_context(cadata=pem)
        else:
            ctx = ssl.create_default_context()  # the host's trust roots, as upstream
        if len(_SSL_CACHE) > 64:
            _SSL_CACHE.clear()
        _SSL_CACHE[key] = ctx
    return ctx


async def _resolve(hook: Hook, store) -> tuple[str, str]:
    """(URL to connect to, TLS server name) for the webhook's clientConfig."""
    cc = hook.spec.get("clientConfig") or {}
    if cc.get("url"):
        return cc["url"], ""
    svc = cc.get("service") or {}
    ns, name, port = svc.get("namespace", ""), svc.get("name", ""), svc.get("port", 443)
    try:
        ep = await services.resolve(store, ns, name, port)
    except services.ResolveError as exc:
        why = {"ServiceNotFound": f'service "{ns}/{name}" not found',
               "ServicePortError": f'service "{ns}/{name}" has no port {port}'}.get(
            exc.reason, f'no ready endpoints for service "{ns}/{name}"')
        raise CallError(hook.name, f"failed to call webhook: {why}") from None
    return ep.url(svc.get("path") or "/"), ep.server_name


def review_request(a, uid: str, obj: dict | None) -> dict:
    group, version, kind = _kind_of(a)
    r = a.resource
    req = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": r.group, "version": r.version, "resource": r.plural},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": r.group, "version": r.version, "resource": r.plural},
        "name": a.name, "operation": a.op, "userInfo": a.user.to_dict(),
        "object": obj, "oldObject": a.old, "dryRun": a.dry_run,
    }
    if a.subresource:
        req["subResource"] = req["requestSubResource"] = a.subresource
    if r.namespaced:
        req["namespace"] = a.namespace
    if _OPTIONS_KIND.get(a.op):
        opts = {"kind": _OPTIONS_KIND[a.op], "apiVersion": "meta.k8s.io/v1"}
        if a.dry_run:
            opts["dryRun"] = ["All"]
        req["options"] = opts
    return {"apiVersion": ADMISSION_V1, "kind": "AdmissionReview", "request": req}


async def call(hook: Hook, a, obj: dict | None, *, mutating: bool) -> dict:
    """POST the AdmissionReview; the verified ``response`` or CallError."""
    side_effects = hook.spec.get("sideEffects")
    if a.dry_run and side_effects not in ("None", "NoneOnDryRun"):
        raise errors.bad_request(f'admission webhook "{hook.name}" does not support dry run')
    if hook.spec.get("matchConditions"):
        raise CallError(hook.name, "matchConditions (CEL) are not supported by "
                                   "bootstrap-apiserver")
    url, server_name = await _resolve(hook, a.store)
    uid = str(uuid.uuid4())
    body = review_request(a, uid, obj)
    cc = hook.spec.get("clientConfig") or {}
    timeout = hook.spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS
    try:
        async with _session().post(url, json=body, ssl=_ssl_context(cc.get("caBundle")),
                                   server_hostname=server_name or None,
                                   timeout=aiohttp.ClientTimeout(total=timeout),
                                   headers={"Accept": "application/json"}) as resp:
            raw = await resp.content.read(MAX_RESPONSE_BYTES + 1)
            status = resp.status
    except TimeoutError:
        raise CallError(hook.name, f'failed to call webhook: Post "{url}": context deadline '
                                   f'exceeded') from None
    except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as exc:
        raise CallError(hook.name, f'failed to call webhook: Post "{url}": {exc}') from None
    if status != 200:
        raise CallError(hook.name, f"failed to call webhook: the server responded with "
                                   f"status {status}")
    if len(raw) > MAX_RESPONSE_BYTES:
        raise CallError(hook.name, "failed to call webhook: response too large")
    return _verify(hook, raw, uid, mutating)


def _verify(hook: Hook, raw: bytes, uid: str, mutating: bool) -> dict:
    def invalid(msg: str) -> CallError:
        return CallError(hook.name, f"received invalid webhook response: {msg}")
    try:
        review = json.loads(raw)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    if not isinstance(review, dict) or not isinstance(review.get("response"), dict):
        raise invalid("webhook response was absent")
    if review.get("apiVersion") != ADMISSION_V1 or review.get("kind") != "AdmissionReview":
        raise invalid(f'expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, '
                      f'got {review.get("apiVersion")}, Kind={review.get("kind")}')
    resp = review["response"]
    if resp.get("uid") != uid:
        raise invalid(f'expected response.uid="{uid}", got "{resp.get("uid", "")}"')
    if resp.get("patch") or resp.get("patchType"):
        if not mutating:
            raise invalid("validating webhooks may not return patches")
        if not resp.get("patchType"):
            raise invalid("webhook returned response.patch but not response.patchType")
        if resp["patchType"] != "JSONPatch":
            raise invalid(f'webhook returned invalid response.patchType of "{resp["patchType"]}"')
    return resp


def _record(hook: Hook, a, resp: dict) -> None:
    """Warnings to the response's Warning headers, annotations to the audit event."""
    if a.warnings is not None:
        a.warnings.extend(w for w in resp.get("warnings") or [] if isinstance(w, str))
    if a.annotations is not None:
        for k, v in (resp.get("auditAnnotations") or {}).items():
            a.annotations[f"{hook.name}/{k}"] = str(v)


def denial(hook: Hook, result: dict | None) -> errors.APIError:
    """Upstream's ToStatusErr."""
    result = result if isinstance(result, dict) else {}
    denied = f'admission webhook "{hook.name}" denied the request'
    code = result.get("code") if isinstance(result.get("code"), int) else 0
    if result.get("message"):
        message = f"{denied}: {result['message']}"
    elif result.get("reason"):
        message = f"{denied}: {result['reason']}"
    else:
        message = f"{denied} without explanation"
    return errors.APIError(code if code >= 400 else 400, result.get("reason") or "", message,
                           result.get("details") if isinstance(result.get("details"), dict)
                           else None)


# -- the two plugins --------------------------------------------------------------

async def mutate(a) -> dict | None:
    hooks = await matching(a, "mutatingwebhookconfigurations")
    if not hooks:
        return a.obj
    obj = a.obj
    previously: set = set()
    reinvoke: set = set()
    for round_ in (0, 1):
        for i, hook in enumerate(hooks):
            if round_ == 1 and hook.uid not in reinvoke:
                continue
            try:
                resp = await call(hook, a, obj, mutating=True)
            except CallError as exc:
                if not hook.ignore_failures:
                    raise errors.internal_error(str(exc)) from None
                _annotate(a, f"failed-open.mutation.webhook.admission.k8s.io/"
                             f"round_{round_}_index_{i}", hook.name)
                continue
            _record(hook, a, resp)
            if not resp.get("allowed"):
                raise denial(hook, resp.get("status"))
            changed = False
            if resp.get("patch"):
                patched = _apply(hook, a, obj, resp["patch"])
                changed = patched != obj
                obj = patched
            _annotate(a, f"mutation.webhook.admission.k8s.io/round_{round_}_index_{i}",
                      json.dumps({"configuration": hook.configuration,
                                  "webhook": hook.name, "mutated": changed},
                                 separators=(",", ":")))
            if round_ == 0:
                if changed:
                    reinvoke |= previously
                if hook.spec.get("reinvocationPolicy") == "IfNeeded":
                    previously.add(hook.uid)
        if not reinvoke:
            break
    return obj


def _apply(hook: Hook, a, obj: dict | None, encoded: str) -> dict:
    try:
        ops = json.loads(base64.b64decode(encoded))
    except ValueError as exc:
        raise errors.internal_error(str(exc)) from None
    if not ops:
        return obj
    if obj is None:
        raise errors.internal_error(f'admission webhook "{hook.name}" attempted to modify the '
                                    f'object, which is not supported for this operation')
    try:
        patched = patch.json_patch(copy.deepcopy(obj), ops)
    except errors.APIError as exc:
        raise errors.internal_error(exc.message) from None
    before, after = obj.get("metadata") or {}, (patched.get("metadata") or {}) \
        if isinstance(patched, dict) else {}
    # The object's identity is the request's: a webhook may not move it elsewhere.
    if not isinstance(patched, dict) or any(before.get(k) != after.get(k) for k in (
            "name", "namespace")) or (patched.get("apiVersion"), patched.get("kind")) != (
            obj.get("apiVersion"), obj.get("kind")):
        raise errors.internal_error(f'admission webhook "{hook.name}" attempted to change the '
                                    f"object's name, namespace or kind")
    return patched


def _annotate(a, key: str, value: str) -> None:
    if a.annotations is not None:
        a.annotations[key] = value


async def validate(a) -> None:
    hooks = await matching(a, "validatingwebhookconfigurations")
    if not hooks:
        return
    results = await asyncio.gather(*(call(h, a, a.obj, mutating=False) for h in hooks),
                                   return_exceptions=True)
    first: errors.APIError | None = None
    for i, (hook, res) in enumerate(zip(hooks, results, strict=True)):
        if isinstance(res, CallError):
            if hook.ignore_failures:
                _annotate(a, f"failed-open.validating.webhook.admission.k8s.io/round_0_index_{i}",
                          hook.name)
                continue
            err = errors.internal_error(str(res))
        elif isinstance(res, errors.APIError):
            err = res
        elif isinstance(res, BaseException):
            raise res
        else:
            _record(hook, a, res)
            if res.get("allowed"):
                continue
            err = denial(hook, res.get("status"))
        first = first or err
    if first is not None:
        raise first
