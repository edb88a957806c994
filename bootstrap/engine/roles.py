"""Reading roles from disk: roles/<role>/{tasks,handlers,defaults}/main.yml."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bootstrap.engine.model import Task
from bootstrap.engine.ops import CONTROL_OPS, OPS
from bootstrap.errors import UserError

TASK_KEYWORDS = {
    "name", "when", "loop", "loop_control", "with_items", "notify", "tags", "register",
    "ignore_errors", "run_once", "check_mode", "vars", "changed_when", "failed_when",
    "listen", "become",
}


def package_data_dir(name: str) -> Path:
    """``bootstrap/_data/<name>`` (roles, templates) as shipped in the package.

    In a checkout these are symlinks to the top-level roles/ and templates/; a
    wheel carries the files themselves. Read through importlib.resources so
    the lookup does not depend on where the package is installed.
    """
    from importlib.resources import files

    path = files("bootstrap") / "_data" / name
    if not isinstance(path, Path) or not path.is_dir():
        raise UserError(f"the bootstrap package has no {name}/ data", where=str(path),
                        hint="reinstall bootstrap from a wheel or a checkout")
    return path


def default_roles_path() -> list[str]:
    """$BOOTSTRAP_ROLES_PATH (colon-separated), else the roles shipped in the package."""
    env = os.environ.get("BOOTSTRAP_ROLES_PATH")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    return [str(package_data_dir("roles"))]


def shared_templates_dir(roles_path: list[str]) -> list[str]:
    """templates/ next to each roles dir: templates several roles use."""
    return [str(Path(p).parent / "templates") for p in roles_path]


@dataclass
class Role:
    name: str
    path: str
    tasks: list[Task] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)


def _load_yaml(path: Path, expect: type) -> Any:
    if not path.exists():
        return expect()
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"invalid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if data is None:
        return expect()
    if not isinstance(data, expect):
        raise UserError(f"expected a {expect.__name__}, got {type(data).__name__}", where=str(path))
    return data


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def parse_task(raw: Any, role: str | None, source: str) -> Task:
    if not isinstance(raw, dict):
        raise UserError("a task must be a mapping", where=source)
    op_keys = [k for k in raw if k not in TASK_KEYWORDS]
    if len(op_keys) != 1:
        raise UserError(
            f"a task names exactly one operation, found {op_keys or 'none'}",
            where=source,
            hint="operations: " + ", ".join(sorted(OPS) + sorted(CONTROL_OPS)),
        )
    op = op_keys[0]
    if op not in OPS and op not in CONTROL_OPS:
        raise UserError(
            f"unknown operation {op!r}", where=source,
            hint="operations: " + ", ".join(sorted(OPS) + sorted(CONTROL_OPS)),
        )
    loop_control = raw.get("loop_control") or {}
    return Task(
        name=str(raw.get("name") or op),
        op=op,
        args=raw[op] if raw[op] is not None else {},
        role=role,
        source=source,
        when=_as_list(raw.get("when")),
        loop=raw.get("loop", raw.get("with_items")),
        loop_var=loop_control.get("loop_var", "item"),
        notify=[str(n) for n in _as_list(raw.get("notify"))],
        tags={str(t) for t in _as_list(raw.get("tags"))},
        register=raw.get("register"),
        ignore_errors=bool(raw.get("ignore_errors", False)),
        run_once=bool(raw.get("run_once", False)),
        check_mode=raw.get("check_mode"),
        vars=dict(raw.get("vars") or {}),
        changed_when=raw.get("changed_when"),
        failed_when=raw.get("failed_when"),
        listen=[str(n) for n in _as_list(raw.get("listen"))],
    )


def load_role(name: str, roles_path: list[str]) -> Role:
    for base in roles_path:
        path = Path(base) / name
        if path.is_dir():
            break
    else:
        raise UserError(f"role {name!r} not found", hint="looked in " + ", ".join(roles_path))
    role = Role(name=name, path=str(path))
    tasks_file = path / "tasks" / "main.yml"
    for i, raw in enumerate(_load_yaml(tasks_file, list)):
        role.tasks.append(parse_task(raw, name, f"{tasks_file} task {i + 1}"))
    handlers_file = path / "handlers" / "main.yml"
    for i, raw in enumerate(_load_yaml(handlers_file, list)):
        role.handlers.append(parse_task(raw, name, f"{handlers_file} handler {i + 1}"))
    role.defaults = _load_yaml(path / "defaults" / "main.yml", dict)
    return role
