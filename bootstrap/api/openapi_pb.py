"""The OpenAPI v2 document as gnostic's protobuf (``openapi.v2.Document``), the body of
``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` that client-go's
``OpenAPISchema()`` asks for (``kubectl explain --output=plaintext-openapiv2``, Helm's
validation, the v2 fallbacks of ``kubectl apply``).

Descriptors are built at run time from ``openapi_v2_proto.json`` (generated from
gnostic-models' OpenAPIv2.proto by tools/gen_openapi_v2_proto.py) and filled from
the JSON document the way gnostic's compiler reads a document:

* field ``foo_bar`` is JSON ``fooBar``, ``_ref`` is ``$ref``; ``vendor_extension``
  holds the ``x-*`` keys as NamedAny, whose value is the extension as YAML text (JSON
  is YAML);
* a message whose one field is a repeated ``Named*`` (Definitions, Properties, Paths,
  Responses, ...) is the JSON object itself, one entry per key;
* ``Any`` (defaults, enums, examples) carries its value as YAML text;
* the oneof wrappers pick their branch as gnostic does: ``$ref`` makes a
  JsonReference, ``in: body`` a BodyParameter, ``in`` names the non-body
  parameter kind, a boolean ``additionalProperties`` is ``boolean``, a ``file``
  response schema a FileSchema; ``type`` and ``items`` are TypeItem / ItemsItem.
"""

from __future__ import annotations

import functools
import json
from importlib import resources as importlib_resources
from typing import Any

import orjson
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "openapi.v2"
CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
_SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
}
_NON_BODY = {"header": "header_parameter_sub_schema",
             "formData": "form_data_parameter_sub_schema",
             "query": "query_parameter_sub_schema", "path": "path_parameter_sub_schema"}


@functools.cache
def _table() -> dict[str, list]:
    text = importlib_resources.files("bootstrap.api").joinpath(
        "openapi_v2_proto.json").read_text()
    return json.loads(text)["messages"]


@functools.cache
def _classes() -> dict[str, type]:
    fd = descriptor_pb2.FileDescriptorProto(name="bootstrap/openapiv2.proto",
                                            package=PACKAGE, syntax="proto3",
                                            dependency=["google/protobuf/any.proto"])
    for name, fields in _table().items():
        msg = fd.message_type.add(name=name)
        oneofs: list[str] = []
        for fname, number, ftype, repeated, oneof in fields:
            f = msg.field.add(name=fname, number=number, json_name=fname)
            f.label = (descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated
                       else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            if ftype in _SCALARS:
                f.type = _SCALARS[ftype]
            else:
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                f.type_name = "." + (ftype if "." in ftype else f"{PACKAGE}.{ftype}")
            if oneof:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    msg.oneof_decl.add(name=oneof)
                f.oneof_index = oneofs.index(oneof)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.FileDescriptorProto.FromString(
        any_pb2.DESCRIPTOR.serialized_pb).SerializeToString())
    pool.Add(fd)
    return {name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in _table()}


def _json_name(field: str) -> str:
    if field == "_ref":
        return "$ref"
    head, *rest = field.split("_")
    return head + "".join(p.title() for p in rest)


def _yaml(value: Any) -> str:
    return orjson.dumps(value).decode() + "\n"


def _fill(msg, name: str, value: Any) -> None:
    """Fill message ``msg`` (of table message ``name``) from JSON ``value``."""
    fields = _table()[name]
    special = _ONEOFS.get(name)
    if special is not None:
        special(msg, value)
        return
    if name == "Any":
        msg.yaml = _yaml(value)
        return
    if name in ("TypeItem", "StringArray"):
        msg.value.extend(value if isinstance(value, list) else [value])
        return
    if name == "ItemsItem":
        for item in value if isinstance(value, list) else [value]:
            _fill(msg.schema.add(), "Schema", item)
        return
    if not isinstance(value, dict):
        return
    named = [f for f in fields if f[3] and f[2].startswith("Named") and
             f[0] != "vendor_extension"]
    for fname, _, ftype, repeated, _ in fields:
        if fname == "vendor_extension":
            for k in sorted(k for k in value if k.startswith("x-")):
                entry = getattr(msg, fname).add(name=k)
                entry.value.yaml = _yaml(value[k])
            continue
        if named and fname == named[0][0] and len(named) == 1:
            # map-like: the JSON object's own (non-extension) keys
            value_type = next(f[2] for f in _table()[ftype] if f[0] == "value")
            for k, v in value.items():
                if k.startswith("x-") and any(f[0] == "vendor_extension" for f in fields):
                    continue
                entry = getattr(msg, fname).add(name=k)
                if value_type in _SCALARS:
                    entry.value = v
                else:
                    _fill(entry.value, value_type, v)
            continue
        key = _json_name(fname)
        if key not in value or value[key] is None:
            continue
        v = value[key]
        if ftype in _SCALARS:
            if repeated:
                getattr(msg, fname).extend(v if isinstance(v, list) else [v])
            elif ftype == "int64":
                setattr(msg, fname, int(v))
            elif ftype == "double":
                setattr(msg, fname, float(v))
            else:
                setattr(msg, fname, v)
        elif repeated:
            for item in v if isinstance(v, list) else [v]:
                _fill(getattr(msg, fname).add(), ftype, item)
        else:
            _fill(getattr(msg, fname), ftype, v)


def _reference(msg, field: str, value: dict) -> bool:
    if isinstance(value, dict) and "$ref" in value:
        getattr(msg, field)._ref = value["$ref"]
        return True
    return False


def _parameters_item(msg, value):
    if not _reference(msg, "json_reference", value):
        _fill(msg.parameter, "Parameter", value)


def _parameter(msg, value):
    if value.get("in") == "body":
        _fill(msg.body_parameter, "BodyParameter", value)
    else:
        _fill(msg.non_body_parameter, "NonBodyParameter", value)


def _non_body(msg, value):
    field = _NON_BODY.get(value.get("in"), "query_parameter_sub_schema")
    sub = "".join(p.title() for p in field.split("_"))
    _fill(getattr(msg, field), sub, value)


def _response_value(msg, value):
    if not _reference(msg, "json_reference", value):
        _fill(msg.response, "Response", value)


def _schema_item(msg, value):
    if isinstance(value, dict) and value.get("type") == "file":
        _fill(msg.file_schema, "FileSchema", value)
    else:
        _fill(msg.schema, "Schema", value)


def _additional_properties(msg, value):
    if isinstance(value, bool):
        msg.boolean = value
    else:
        _fill(msg.schema, "Schema", value)


_ONEOFS = {"ParametersItem": _parameters_item, "Parameter": _parameter,
           "NonBodyParameter": _non_body, "ResponseValue": _response_value,
           "SchemaItem": _schema_item, "AdditionalPropertiesItem": _additional_properties}


def document(doc: dict) -> bytes:
    """The serialized ``openapi.v2.Document`` of an OpenAPI v2 JSON document."""
    msg = _classes()["Document"]()
    _fill(msg, "Document", doc)
    return msg.SerializeToString(deterministic=True)


def parse(data: bytes):
    """The Document message of serialized bytes (tests, debugging)."""
    msg = _classes()["Document"]()
    msg.ParseFromString(data)
    return msg
