"""API errors with upstream Status reasons, codes and messages.

Every failure the API server returns is an ``APIError``; ``.status()`` renders
the ``meta.k8s.io/v1`` Status body kubectl and client-go parse. Messages follow
k8s.io/apimachinery/pkg/api/errors word for word because kubectl and tests
match on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def qualified(resource: str, group: str = "") -> str:
    """GroupResource.String(): ``deployments.apps`` or ``pods``."""
    return f"{resource}.{group}" if group else resource


@dataclass(frozen=True)
class FieldError:
    """One field-level validation failure (k8s.io/apimachinery/pkg/util/validation/field.Error).

    ``type`` is the cause reason (FieldValueRequired, FieldValueInvalid, ...);
    ``body`` is what follows "<field>: " in the message.
    """

    type: str
    field: str
    body: str

    def __str__(self) -> str:
        return f"{self.field}: {self.body}" if self.field else self.body

    def cause(self) -> dict:
        return {"reason": self.type, "message": self.body, "field": self.field}


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    # Go's %#v for the shapes validation reports most (label maps, string lists).
    if isinstance(value, dict):
        if all(isinstance(v, str) for v in value.values()):
            return "map[string]string{" + ", ".join(f"{_quote(k)}:{_quote(v)}" for k, v in sorted(value.items())) + "}"
        return "{...}"
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return "[]string{" + ", ".join(_quote(v) for v in value) + "}"
        return "[...]"
    return str(value)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))


def invalid_value(field: str, value: Any, detail: str = "") -> FieldError:
    body = f"Invalid value: {_quote(value)}" + (f": {detail}" if detail else "")
    return FieldError("FieldValueInvalid", field, body)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    body = f"Unsupported value: {_quote(value)}"
    if supported:
        body += ": supported values: " + ", ".join(_quote(s) for s in supported)
    return FieldError("FieldValueNotSupported", field, body)


def forbidden_field(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, f"Forbidden: {detail}")


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field, f"Duplicate value: {_quote(value)}")


def too_long(field: str, max_length: int) -> FieldError:
    return FieldError("FieldValueTooLong", field, f"Too long: may not be more than {max_length} bytes")


def type_invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueTypeInvalid", field, f"Invalid value: {_quote(value)}: {detail}")


def unknown_field(field: str) -> FieldError:
    # Strict field validation reports unknown fields with this wording (BadRequest).
    return FieldError("FieldValueInvalid", field, f'unknown field "{field}"')


class APIError(Exception):
    """An error returned to API clients as a Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def __repr__(self) -> str:
        return f"APIError({self.code}, {self.reason!r}, {self.message!r})"


def _details(name: str, group: str, kind: str, causes: list[dict] | None = None) -> dict:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    if causes:
        d["causes"] = causes
    return d


def not_found(resource: str, name: str, group: str = "") -> APIError:
    return APIError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                    _details(name, group, resource))


def already_exists(resource: str, name: str, group: str = "") -> APIError:
    return APIError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                    _details(name, group, resource))


def conflict(resource: str, name: str, group: str = "",
             detail: str = "the object has been modified; please apply your changes to the latest version and try again") -> APIError:
    return APIError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {detail}',
                    _details(name, group, resource))


def invalid(kind: str, name: str, causes: list[FieldError], group: str = "") -> APIError:
    """422 Invalid, message as NewInvalid: one error inline, several in brackets."""
    gk = qualified(kind, group)
    if len(causes) == 1:
        agg = str(causes[0])
    else:
        agg = "[" + ", ".join(str(c) for c in causes) + "]"
    msg = f'{gk} "{name}" is invalid: {agg}' if causes else f'{gk} "{name}" is invalid'
    return APIError(422, "Invalid", msg, _details(name, group, kind, [c.cause() for c in causes]))


def forbidden(user: str, verb: str, resource: str, group: str = "", namespace: str = "",
              name: str = "", reason: str = "", subresource: str = "",
              path: str = "", resource_request: bool = True) -> APIError:
    """403 as the apiserver's authorization filter writes it (responsewriters.Forbidden)."""
    if not resource_request:
        msg = f'User "{user}" cannot {verb} path "{path}"'
    else:
        res = f"{resource}/{subresource}" if subresource else resource
        if namespace:
            msg = (f'User "{user}" cannot {verb} resource "{res}" in API group "{group}" '
                   f'in the namespace "{namespace}"')
        else:
            msg = f'User "{user}" cannot {verb} resource "{res}" in API group "{group}" at the cluster scope'
    if reason:
        msg = f"{msg}: {reason}"
    return forbidden_message(resource if resource_request else "", name, msg, group)


def forbidden_message(resource: str, name: str, err: str, group: str = "") -> APIError:
    """NewForbidden(qualifiedResource, name, err): used by admission too."""
    if not resource:
        message = f"forbidden: {err}"
    elif not name:
        message = f"{qualified(resource, group)} is forbidden: {err}"
    else:
        message = f'{qualified(resource, group)} "{name}" is forbidden: {err}'
    return APIError(403, "Forbidden", message, _details(name, group, resource))


def unauthorized(message: str = "Unauthorized") -> APIError:
    return APIError(401, "Unauthorized", message)


def bad_request(message: str, causes: list[FieldError] | None = None) -> APIError:
    details = {"causes": [c.cause() for c in causes]} if causes else None
    return APIError(400, "BadRequest", message, details)


def gone(message: str) -> APIError:
    """410 Expired: resourceVersion too old for a watch or continue token."""
    return APIError(410, "Expired", message)


def too_old_resource_version(requested: int, oldest: int) -> APIError:
    return gone(f"too old resource version: {requested} ({oldest})")


def too_large_resource_version(requested: int, current: int, retry_after: int = 0) -> APIError:
    """504 for a resourceVersion newer than storage's revision (storage's
    NewTooLargeResourceVersionError): clients holding revisions from before an etcd
    restore get it, and informers list again from scratch when they do."""
    details: dict[str, Any] = {"causes": [{"reason": "ResourceVersionTooLarge",
                                           "message": "Too large resource version"}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return APIError(504, "Timeout",
                    f"Timeout: Too large resource version: {requested}, current: {current}",
                    details)


def is_too_large_resource_version(exc: APIError) -> bool:
    """client-go's isTooLargeResourceVersionError: the ResourceVersionTooLarge cause, or
    (servers before 1.18.6) a Timeout whose cause or message says so."""
    causes = [c for c in (exc.details or {}).get("causes") or [] if isinstance(c, dict)]
    if any(c.get("reason") == "ResourceVersionTooLarge" for c in causes):
        return True
    return exc.reason == "Timeout" and (
        any(c.get("message") == "Too large resource version" for c in causes)
        or "Too large resource version" in exc.message)


def unsupported_media_type(content_type: str = "", accepted: list[str] | None = None) -> APIError:
    accepted = accepted or ["application/json-patch+json", "application/merge-patch+json",
                            "application/apply-patch+yaml", "application/strategic-merge-patch+json"]
    msg = ("the body of the request was in an unknown format - accepted media types include: "
           + ", ".join(accepted))
    return APIError(415, "UnsupportedMediaType", msg)


def not_acceptable(accepted: list[str]) -> APIError:
    return APIError(406, "NotAcceptable",
                    "only the following media types are accepted: " + ", ".join(accepted))


def method_not_supported(resource: str, action: str, group: str = "") -> APIError:
    return APIError(405, "MethodNotAllowed",
                    f'{action} is not supported on resources of kind "{qualified(resource, group)}"',
                    _details("", group, resource))


def too_many_requests(message: str = "Too many requests, please try again later.",
                      retry_after: int = 1) -> APIError:
    return APIError(429, "TooManyRequests", message, {"retryAfterSeconds": retry_after})


def internal_error(err: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {err}",
                    {"causes": [{"message": err}]})


def timeout(message: str, retry_after: int = 0) -> APIError:
    details = {"retryAfterSeconds": retry_after} if retry_after else None
    return APIError(504, "Timeout", message, details)


def service_unavailable(message: str) -> APIError:
    return APIError(503, "ServiceUnavailable", message)
