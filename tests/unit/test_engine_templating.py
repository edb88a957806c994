"""Lazy variables, native expressions, strict undefined, filters."""

from __future__ import annotations

import pytest

from bootstrap.engine.templating import (
    LazyVars,
    TemplateError,
    evaluate,
    render_string,
    render_value,
)


def test_whole_expression_keeps_type_mixed_text_is_string():
    v = LazyVars([{"port": 2379, "hosts": ["a", "b"], "flag": False}])
    assert render_string("{{ port }}", v) == 2379
    assert render_string("{{ hosts }}", v) == ["a", "b"]
    assert render_string("{{ flag }}", v) is False
    assert render_string("p={{ port }}", v) == "p=2379"
    assert render_string("{{ port }}-{{ port }}", v) == "2379-2379"  # never literal_eval'd to 0
    assert render_value({"a": ["{{ port }}", 1], "b": "x"}, v) == {"a": [2379, 1], "b": "x"}


def test_lazy_resolution_uses_the_highest_layer_and_detects_loops():
    v = LazyVars([{"url": "https://{{ ip }}:{{ port }}", "port": 1, "ip": "d"},
                  {"ip": "10.0.0.5"}, {"port": 2380}])
    assert v["url"] == "https://10.0.0.5:2380"
    loop = LazyVars([{"a": "{{ b }}", "b": "{{ a }}"}])
    with pytest.raises(TemplateError, match="refers to itself"):
        loop["a"]


def test_undefined_is_an_error_but_default_and_defined_work():
    v = LazyVars([{"x": {"y": 1}}])
    with pytest.raises(TemplateError, match="nope"):
        render_string("a {{ nope }}", v)
    assert render_string("{{ nope | default('d') }}", v) == "d"
    assert evaluate("nope is defined", v) is False
    assert evaluate("x.y == 1 and 'y' in x", v) is True


def test_child_adds_item_and_filters():
    v = LazyVars([{"names": ["etcd", "runc"]}]).child({"item": {"n": "a b"}})
    assert render_string("{{ item.n | quote }}", v) == "'a b'"
    assert render_string("{{ names | join(',') }}", v) == "etcd,runc"
    assert render_string("{{ '/a/b.crt' | basename }}", v) == "b.crt"
    assert render_string("{{ {'k': 1} | to_json }}", v) == '{"k": 1}'
    assert render_string("{{ 'yes' | bool }}", v) is True
