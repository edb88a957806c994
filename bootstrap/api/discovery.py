"""What the API server serves beyond the static catalogue, from its discovery.

Controllers that act on every kind (the garbage collector, the namespace
controller) must also see CustomResourceDefinitions' resources and aggregated
APIs, which exist only at run time. This reads aggregated discovery (v2, what
kubectl reads) and returns a ``Resource`` per served group-resource, in the
preferred version (upstream's ServerPreferredResources), so the client and the
informers address them like built-ins.
"""

from __future__ import annotations

from bootstrap.api.resources import CATALOGUE, Resource

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def parse(doc: dict) -> list[Resource]:
    """Resources of an APIGroupDiscoveryList: each group-resource once, in the
    first (preferred) version that serves it."""
    out: list[Resource] = []
    seen: set[tuple[str, str]] = set()
    for group in doc.get("items") or []:
        name = (group.get("metadata") or {}).get("name") or ""
        for version in group.get("versions") or []:
            v = version.get("version") or ""
            for r in version.get("resources") or []:
                plural = r.get("resource") or ""
                kind = (r.get("responseKind") or {}).get("kind") or ""
                if not plural or not kind or (name, plural) in seen:
                    continue
                seen.add((name, plural))
                out.append(Resource(
                    group=name, version=v, kind=kind, plural=plural,
                    singular=r.get("singularResource") or kind.lower(),
                    namespaced=r.get("scope") == "Namespaced",
                    short_names=tuple(r.get("shortNames") or ()),
                    verbs=tuple(r.get("verbs") or ()),
                    subresources=tuple(s.get("subresource", "") for s in
                                       r.get("subresources") or ()),
                    categories=tuple(r.get("categories") or ())))
    return out


def document(resources: list[Resource]) -> dict:
    """The APIGroupDiscoveryList ``parse`` reads, for ``resources`` (fakes serve it)."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for r in resources:
        groups.setdefault(r.group, {}).setdefault(r.version, []).append({
            "resource": r.plural, "singularResource": r.singular,
            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
            "scope": "Namespaced" if r.namespaced else "Cluster", "verbs": list(r.verbs),
            **({"shortNames": list(r.short_names)} if r.short_names else {}),
            **({"categories": list(r.categories)} if r.categories else {}),
            **({"subresources": [{"subresource": s} for s in r.subresources]}
               if r.subresources else {})})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": [{"metadata": {"name": g},
                       "versions": [{"version": v, "resources": rs, "freshness": "Current"}
                                    for v, rs in versions.items()]}
                      for g, versions in groups.items()]}


async def server_resources(client) -> list[Resource]:
    """Every resource the server's discovery lists (core and named groups)."""
    out: list[Resource] = []
    for path in ("/api", "/apis"):
        doc = await client.request("GET", path, headers={"Accept": AGGREGATED})
        if isinstance(doc, dict):
            out.extend(parse(doc))
    return out


async def extra_resources(client, verbs: set[str]) -> list[Resource]:
    """Served resources the static catalogue does not hold (custom and aggregated
    ones) that support every verb in ``verbs``."""
    static = {(r.group, r.plural) for r in CATALOGUE}
    return [r for r in await server_resources(client)
            if (r.group, r.plural) not in static and verbs <= set(r.verbs)]
