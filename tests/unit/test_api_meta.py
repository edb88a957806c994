"""Metadata helpers: names, uids, timestamps, generation."""

import re

from bootstrap.api import meta


def test_generate_name_suffix_alphabet_and_truncation():
    n = meta.generate_name("web-")
    assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", n)
    long = meta.generate_name("x" * 80)
    assert len(long) == 63 and long.startswith("x" * 58)


def test_uid_and_times():
    assert re.fullmatch(r"[0-9a-f-]{36}", meta.new_uid())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta.now_rfc3339())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", meta.now_rfc3339_micro())
    assert meta.parse_time("2026-01-01T00:00:00Z").year == 2026


def test_generation_only_for_kinds_that_track_it():
    cm = {"kind": "ConfigMap", "metadata": {"generation": 1}, "data": {"a": "1"}}
    meta.bump_generation(None, cm)
    assert "generation" not in cm["metadata"]
    d = {"kind": "Deployment", "metadata": {}, "spec": {}}
    meta.bump_generation(None, d)
    assert d["metadata"]["generation"] == 1


def test_generation_bumps_only_on_spec_change():
    old = {"metadata": {"generation": 3}, "spec": {"replicas": 1}, "status": {"x": 1}}
    same = {"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"x": 2}}
    meta.bump_generation(old, same)
    assert same["metadata"]["generation"] == 3
    changed = {"metadata": {}, "spec": {"replicas": 2}}
    meta.bump_generation(old, changed)
    assert changed["metadata"]["generation"] == 4
    created = {"spec": {}}
    meta.bump_generation(None, created)
    assert created["metadata"]["generation"] == 1
    # ConfigMap-like kinds: top-level data counts as spec
    assert meta.spec_changed({"data": {"a": "1"}}, {"data": {"a": "2"}})


def test_owner_refs_and_finalizers():
    obj = {"metadata": {"ownerReferences": [{"uid": "1"}, {"uid": "2", "controller": True}],
                        "finalizers": ["foregroundDeletion"]}}
    assert meta.controller_ref(obj)["uid"] == "2"
    assert meta.has_finalizer(obj, "foregroundDeletion")
    assert meta.get_path({"status": {"phase": "Running"}}, "status.phase") == "Running"
    assert meta.get_path({}, "status.phase", "none") == "none"
