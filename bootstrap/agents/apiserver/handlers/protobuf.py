"""Decoding of the protobuf request bodies kubectl's typed clients send.

kubectl sends ``application/vnd.kubernetes.protobuf`` (and accepts JSON back)
for the commands built on typed clients: every ``kubectl create <kind>``,
``run``, ``expose``, ``auth can-i|whoami``, ``certificate approve|deny``,
``drain`` (Eviction), ``scale``. Bodies are the ``k8s\\0`` magic plus a
runtime.Unknown envelope around the typed message. Field numbers, JSON names and
zero-value rules come from protobuf_table.json, generated from upstream's
generated.proto and Go struct tags by tools/gen_protobuf_table.py (ADR 0001);
a kind not in the table is a 415 so the client reports it plainly.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from bootstrap.api import errors

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_TABLE_PATH = Path(__file__).with_name("protobuf_table.json")


@cache
def table() -> dict:
    return json.loads(_TABLE_PATH.read_text())


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        if i > len(buf):
            raise ValueError("truncated message")
        yield num, v


_ABSENT = object()
_VARINT = {"int32", "int64", "uint32", "uint64", "bool"}


def _int(raw: int) -> int:
    return raw - (1 << 64) if raw >= 1 << 63 else raw


def _scalar(typ: str, raw, keep_zero: bool):
    if typ == "string":
        value = raw.decode()
    elif typ == "bytes":
        value = base64.b64encode(raw).decode()
    elif typ == "bool":
        value = bool(raw)
    elif typ in ("double", "float"):
        value = struct.unpack("<d" if typ == "double" else "<f", raw)[0]
    else:
        value = _int(raw)
    # Go writes a plain field's zero value too; JSON omits it (omitempty) unless the
    # field is a pointer (set on purpose) or has no omitempty: keep_zero says which.
    return value if value or keep_zero else _ABSENT


def _go_duration(nanos: int) -> str:
    """metav1.Duration's JSON: Go's time.Duration.String()."""
    if nanos == 0:
        return "0s"
    sign, nanos = ("-" if nanos < 0 else ""), abs(nanos)
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = f"{rest / 10**9:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _special(kind: str, raw: bytes, keep_zero: bool):
    f = dict(_fields(raw))
    if kind in ("time", "microtime"):
        seconds, nanos = _int(f.get(1, 0)), f.get(2, 0)
        if not seconds and not nanos:
            return _ABSENT  # a zero metav1.Time is null in JSON
        t = datetime.fromtimestamp(seconds, UTC)
        if kind == "time":
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    if kind == "duration":
        return _go_duration(_int(f.get(1, 0)))
    if kind == "quantity":
        return f.get(1, b"").decode() or _ABSENT
    if kind == "rawjson":  # RawExtension / FieldsV1 carry the JSON bytes themselves
        return json.loads(f[1]) if f.get(1) else _ABSENT
    if kind == "intorstr":
        if f.get(1, 0) == 1:
            return f.get(3, b"").decode()
        value = _int(f.get(2, 0))
        return value if value or keep_zero else _ABSENT
    raise ValueError(f"no decoding for {kind}")


def _value(typ: str, raw, keep_zero: bool):
    """One field's JSON value, or _ABSENT where JSON would omit it."""
    tab = table()
    if typ in tab["special"]:
        return _special(tab["special"][typ], raw, keep_zero)
    if typ in tab["messages"]:
        msg = tab["messages"][typ]
        if "list" in msg:  # a Go named slice wrapped in a message (ExtraValue)
            return [_value(msg["list"], r, True) for n, r in _fields(raw) if n == 1]
        return _decode(raw, typ)
    return _scalar(typ, raw, keep_zero)


def _packed(typ: str, raw: bytes) -> list:
    """A packed repeated scalar (proto3 style); proto2 writers may still use it."""
    if typ in ("double", "float"):
        size = 8 if typ == "double" else 4
        return [raw[i:i + size] for i in range(0, len(raw), size)]
    out, i = [], 0
    while i < len(raw):
        v, i = _varint(raw, i)
        out.append(v)
    return out


@cache
def _by_number(message: str) -> dict:
    return {row[0]: row[1:] for row in table()["messages"][message]["fields"]}


def _decode(buf: bytes, message: str) -> dict:
    by_num = _by_number(message)
    out: dict = {}
    for num, raw in _fields(buf):
        if num not in by_num:
            continue  # fields this release does not know are skipped, as proto does
        name, typ, mode, flags = by_num[num]
        if mode == "m":
            entry = dict(_fields(raw))
            value = _value(typ, entry.get(2, b""), True)
            # A map entry always carries its value, empty ones included.
            out.setdefault(name, {})[entry.get(1, b"").decode()] = (
                "" if value is _ABSENT else value)
        elif mode == "r":
            items = (_packed(typ, raw) if isinstance(raw, bytes) and (
                typ in _VARINT or typ in ("double", "float")) else [raw])
            out.setdefault(name, []).extend(
                "" if v is _ABSENT else v for v in (_value(typ, r, True) for r in items))
        else:
            value = _value(typ, raw, "z" in flags)
            if value is _ABSENT:
                continue
            if "i" in flags:  # a Go struct embedded with json:",inline"
                out.update(value)
            else:
                out[name] = value
    return out


def decode(body: bytes) -> dict:
    """A protobuf request body as the equivalent JSON object."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("the protobuf body does not start with the k8s magic number")
    try:
        env = dict(_fields(body[len(MAGIC):]))
        type_meta = dict(_fields(env.get(1, b"")))
        api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
        message = table()["kinds"].get(f"{api_version}/{kind}")
        if message is None:
            raise errors.unsupported_media_type(CONTENT_TYPE, ["application/json",
                                                               "application/yaml"])
        obj = _decode(env.get(2, b""), message)
    except (ValueError, IndexError, KeyError, UnicodeDecodeError, struct.error) as exc:
        raise errors.bad_request(f"cannot decode protobuf body: {exc}") from None
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
