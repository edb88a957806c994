"""Jinja2 for task arguments, ``when`` expressions and template files.

Variables resolve lazily, as in Ansible: a role default such as
``etcd_peer_url: "https://{{ node_ip }}:2380"`` is rendered only when some
task reads it, against the same host's variables. Undefined variables are
errors (StrictUndefined), so a typo fails the task instead of writing an
empty string into a config file.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
import yaml

from bootstrap.errors import UserError

_WHOLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.S)


class TemplateError(UserError):
    pass


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    return bool(value)


def _regex_replace(value: str, pattern: str, repl: str = "") -> str:
    return re.sub(pattern, repl, str(value))


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, jinja2.Undefined):
        raise jinja2.UndefinedError(msg or "mandatory variable is not defined")
    return value


def _make_env(search_path: list[str] | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path or []),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,  # Ansible's template default; templates are written for it
        autoescape=False,
    )
    env.filters.update(
        to_json=lambda v, **kw: json.dumps(v, **kw),
        to_nice_json=lambda v: json.dumps(v, indent=2, sort_keys=True),
        to_yaml=lambda v: yaml.safe_dump(v, default_flow_style=False),
        bool=_to_bool,
        basename=os.path.basename,
        dirname=os.path.dirname,
        quote=lambda v: shlex.quote(str(v)),
        b64encode=lambda v: base64.b64encode(str(v).encode()).decode(),
        b64decode=lambda v: base64.b64decode(str(v)).decode(),
        regex_replace=_regex_replace,
        mandatory=_mandatory,
    )
    return env


_ENV = _make_env()
_RESOLVING = threading.local()


class LazyVars(Mapping):
    """A host's variables; string values holding Jinja2 are rendered on read."""

    def __init__(self, layers: list[Mapping[str, Any]], env: jinja2.Environment | None = None):
        self._layers = layers  # lowest precedence first
        self._env = env or _ENV
        self._cache: dict[str, Any] = {}

    def _raw(self, key: str) -> Any:
        for layer in reversed(self._layers):
            if key in layer:
                return layer[key]
        if key in self._env.globals:
            return self._env.globals[key]
        raise KeyError(key)

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        raw = self._raw(key)
        stack: set = getattr(_RESOLVING, "stack", None) or set()
        _RESOLVING.stack = stack
        marker = (id(self), key)
        if marker in stack:
            raise TemplateError(f"variable {key!r} refers to itself")
        stack.add(marker)
        try:
            value = render_value(raw, self)
        finally:
            stack.discard(marker)
        self._cache[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return any(key in layer for layer in self._layers) or key in self._env.globals

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in reversed(self._layers):
            for k in layer:
                if k not in seen:
                    seen.add(k)
                    yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def child(self, extra: Mapping[str, Any]) -> LazyVars:
        """The same variables with ``extra`` (e.g. ``item``) on top."""
        return LazyVars([*self._layers, dict(extra)], self._env)


def has_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _run(template: jinja2.Template, variables: Mapping[str, Any]):
    # shared=True hands our Mapping to Jinja2 as-is, so variables stay lazy.
    ctx = template.new_context(variables, shared=True)
    return ctx, template.root_render_func(ctx)


def evaluate(expr: str, variables: Mapping[str, Any]) -> Any:
    """The native value of a Jinja2 expression (``when``, ``loop``, whole ``{{ }}``)."""
    try:
        tmpl = _ENV.from_string("{% set __value = (" + expr + ") %}")
        ctx, gen = _run(tmpl, variables)
        for _ in gen:
            pass
        return ctx.vars["__value"]
    except jinja2.TemplateError as exc:
        raise TemplateError(f"cannot evaluate `{expr.strip()}`: {exc}") from None


def render_string(text: str, variables: Mapping[str, Any]) -> Any:
    """Render a string; a string that is exactly one ``{{ expr }}`` keeps its type."""
    if not has_template(text):
        return text
    m = _WHOLE_EXPR.match(text)
    if m and "{{" not in m.group("expr") and "}}" not in m.group("expr"):
        return evaluate(m.group("expr"), variables)
    try:
        _, gen = _run(_ENV.from_string(text), variables)
        return "".join(gen)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"cannot render {text!r}: {exc}") from None


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every string inside dicts and lists."""
    if isinstance(value, str):
        return render_string(value, variables)
    if isinstance(value, dict):
        return {k: render_value(v, variables) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, variables) for v in value]
    return value


def render_file(path: str, search_path: list[str], variables: Mapping[str, Any]) -> str:
    """Render a template file; ``{% include %}`` looks in ``search_path``."""
    env = _template_env(tuple(search_path))
    try:
        tmpl = env.get_template(path) if not os.path.isabs(path) else env.from_string(
            open(path).read()
        )
        _, gen = _run(tmpl, variables)
        return "".join(gen)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"template {exc.name} not found", hint="looked in " + ", ".join(search_path)
        ) from None
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or path
        line = getattr(exc, "lineno", None)
        raise TemplateError(f"{exc}", where=f"{where}:{line}" if line else where) from None


_ENVS: dict[tuple, jinja2.Environment] = {}
_ENVS_LOCK = threading.Lock()


def _template_env(search_path: tuple) -> jinja2.Environment:
    with _ENVS_LOCK:
        env = _ENVS.get(search_path)
        if env is None:
            env = _ENVS[search_path] = _make_env(list(search_path))
        return env


def truthy(value: Any) -> bool:
    if isinstance(value, jinja2.Undefined):
        # A typo in a `when` must fail, not silently skip the task.
        try:
            value._fail_with_undefined_error()
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"condition uses an undefined variable: {exc}") from None
    return _to_bool(value) if isinstance(value, str) else bool(value)
