"""An indexed object store, as client-go's ``cache.Indexer``.

Objects are keyed ``namespace/name`` (``name`` when cluster-scoped). Named index
functions map an object to the index values it is filed under, so a reader asks
"every pod on node X" or "every object owned by UID Y" without scanning.
The store is touched only from the event loop, so it needs no locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

IndexFunc = Callable[[dict], list[str]]

NAMESPACE = "namespace"
NODE_NAME = "spec.nodeName"
OWNER_UID = "ownerUID"


def meta_key(obj: dict) -> str:
    """``namespace/name`` or ``name``: client-go's MetaNamespaceKeyFunc."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else meta.get("name", "")


def split_key(key: str) -> tuple[str | None, str]:
    """The inverse of :func:`meta_key`: ``(namespace or None, name)``."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, key)


def index_by_namespace(obj: dict) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def index_by_node_name(obj: dict) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def index_by_owner_uid(obj: dict) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [r["uid"] for r in refs if r.get("uid")]


STANDARD_INDEXERS: dict[str, IndexFunc] = {
    NAMESPACE: index_by_namespace,
    NODE_NAME: index_by_node_name,
    OWNER_UID: index_by_owner_uid,
}


class Indexer:
    def __init__(self, indexers: dict[str, IndexFunc] | None = None):
        self._items: dict[str, dict] = {}
        self._indexers: dict[str, IndexFunc] = {}
        # index name -> index value -> keys (a dict as an insertion-ordered set, so
        # reads are deterministic without sorting on every call)
        self._indices: dict[str, dict[str, dict[str, None]]] = {}
        self.add_indexers(indexers or {NAMESPACE: index_by_namespace})

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        """Add named indexes; existing items are indexed at once. Re-adding a name
        with the same function is a no-op (several consumers ask for the same one)."""
        for name, fn in indexers.items():
            if self._indexers.get(name) is fn:
                continue
            if name in self._indexers:
                raise ValueError(f"indexer {name!r} already exists with another function")
            self._indexers[name] = fn
            index: dict[str, dict[str, None]] = {}
            self._indices[name] = index
            for key, obj in self._items.items():
                for value in fn(obj):
                    index.setdefault(value, {})[key] = None

    # reads ---------------------------------------------------------------------

    def get(self, key: str) -> dict | None:
        return self._items.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> dict | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            return list(self._items.values())
        if NAMESPACE in self._indexers:
            return self.by_index(NAMESPACE, namespace)
        return [o for o in self._items.values()
                if (o.get("metadata") or {}).get("namespace") == namespace]

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def index_keys(self, index: str, value: str) -> list[str]:
        if index not in self._indices:
            raise KeyError(f"index {index!r} does not exist")
        return list(self._indices[index].get(value, ()))

    def by_index(self, index: str, value: str) -> list[dict]:
        return [self._items[k] for k in self.index_keys(index, value)]

    # mutations -----------------------------------------------------------------

    def add(self, obj: dict) -> dict | None:
        """Insert or replace; returns the previous object under the same key."""
        key = meta_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        return old

    update = add

    def delete(self, obj: dict) -> dict | None:
        """Remove by the object's key; returns what was stored (or None)."""
        return self.delete_key(meta_key(obj))

    def delete_key(self, key: str) -> dict | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[dict]) -> dict[str, dict]:
        """Swap the whole content; returns the previous items by key."""
        old = self._items
        self._items = {}
        for index in self._indices.values():
            index.clear()
        for obj in objs:
            self.add(obj)
        return old

    def _index(self, key: str, obj: dict) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in fn(obj):
                index.setdefault(value, {})[key] = None

    def _unindex(self, key: str, obj: dict) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.pop(key, None)
                    if not keys:
                        del index[value]
