"""YAML reading that remembers where things are.

Users fix files by line number, so every mapping we build records the line of
each key, and syntax errors and duplicate keys (which PyYAML silently resolves
to the last one) become a ``UserError`` pointing at ``file:line:col``.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from bootstrap.errors import UserError


class MarkedDict(dict):
    """A dict that knows the 1-based line of each key and of itself."""

    line: int | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    result = MarkedDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found an unhashable key", key_node.start_mark) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {result.key_lines[key]})",
                key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _where(path: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return path
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


def _describe(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem and context:
        return f"invalid YAML: {problem} ({context})"
    if problem:
        return f"invalid YAML: {problem}"
    return f"invalid YAML: {str(exc).splitlines()[0]}"


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise UserError(f"{what} not found", where=str(path),
                        hint="check the path") from None
    except IsADirectoryError:
        raise UserError(f"{what} is a directory, expected a file", where=str(path)) from None
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                        where=str(path)) from None
    except OSError as exc:
        raise UserError(f"cannot read {what}: {exc.strerror}", where=str(path)) from None


def load_all(text: str, path: str) -> list[Any]:
    """All documents of ``text``; ``path`` is only used in error messages."""
    try:
        return list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise UserError(_describe(exc), where=_where(path, exc)) from None


def load_one(text: str, path: str) -> Any:
    docs = [d for d in load_all(text, path) if d is not None]
    if len(docs) > 1:
        raise UserError(f"expected one YAML document, found {len(docs)}", where=path,
                        hint="remove the extra '---' documents")
    return docs[0] if docs else None


def where(path: str, container: Any = None, key: Any = None) -> str:
    """``path:line`` for ``key`` in ``container`` when its line is known."""
    line = None
    if isinstance(container, MarkedDict):
        line = container.line_of(key) if key is not None else container.line
    return f"{path}:{line}" if line else path
