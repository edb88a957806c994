"""The Indexer: keys, named indexes kept in step with adds, updates and deletes."""

import pytest

from bootstrap.api.cache import (
    NAMESPACE,
    NODE_NAME,
    OWNER_UID,
    STANDARD_INDEXERS,
    Indexer,
    index_by_node_name,
    meta_key,
    split_key,
)


def pod(name, ns="default", node=None, owners=(), rv="1"):
    obj = {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv,
                        "ownerReferences": [{"uid": u} for u in owners]}, "spec": {}}
    if node:
        obj["spec"]["nodeName"] = node
    return obj


def test_keys_as_client_go():
    assert meta_key(pod("a", "ns")) == "ns/a"
    assert meta_key({"metadata": {"name": "n1"}}) == "n1"
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("n1") == (None, "n1")


def test_indexes_follow_updates_and_deletes():
    idx = Indexer(STANDARD_INDEXERS)
    idx.add(pod("a", node="n1", owners=["u1"]))
    idx.add(pod("b", node="n1", owners=["u1", "u2"]))
    idx.add(pod("c", ns="other", node="n2"))
    assert [meta_key(o) for o in idx.by_index(NODE_NAME, "n1")] == ["default/a", "default/b"]
    assert idx.index_keys(OWNER_UID, "u2") == ["default/b"]
    assert [meta_key(o) for o in idx.list("other")] == ["other/c"]
    # a moves to n2: out of n1's index, into n2's
    old = idx.update(pod("a", node="n2", rv="2"))
    assert old["metadata"]["resourceVersion"] == "1"
    assert idx.index_keys(NODE_NAME, "n1") == ["default/b"]
    assert idx.index_keys(NODE_NAME, "n2") == ["other/c", "default/a"]  # order indexed
    assert idx.index_keys(OWNER_UID, "u1") == ["default/b"]
    idx.delete(pod("b"))
    assert idx.index_keys(NODE_NAME, "n1") == []
    assert idx.index_keys(OWNER_UID, "u2") == []
    assert idx.get("default/b") is None and len(idx) == 2
    assert idx.get_by_name("c", "other")["spec"]["nodeName"] == "n2"


def test_indexer_added_after_items_indexes_them_and_replace_rebuilds():
    idx = Indexer()
    idx.add(pod("a", node="n1"))
    with pytest.raises(KeyError):
        idx.by_index(NODE_NAME, "n1")
    idx.add_indexers({NODE_NAME: index_by_node_name})
    idx.add_indexers({NODE_NAME: index_by_node_name})  # same function again: no-op
    with pytest.raises(ValueError):
        idx.add_indexers({NODE_NAME: lambda o: []})
    assert idx.index_keys(NODE_NAME, "n1") == ["default/a"]
    old = idx.replace([pod("z", node="n9")])
    assert list(old) == ["default/a"]
    assert idx.index_keys(NODE_NAME, "n1") == [] and idx.index_keys(NODE_NAME, "n9") == ["default/z"]
    assert idx.index_keys(NAMESPACE, "default") == ["default/z"]
