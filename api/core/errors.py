"""One ``DomainError`` hierarchy, mapped to HTTP by one handler to ``ErrorResponse``.

Services raise these (they import nothing from FastAPI); the handlers installed
by ``install_error_handlers`` translate the message by the request's locale.
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.core.i18n import translate

log = structlog.get_logger("api.core.errors")


class DomainError(Exception):
    """Base of every error the API reports to a client.

    ``message`` is the English msgid (with ``{placeholders}`` filled from
    ``params``) that the handler translates; ``code`` is stable for clients.
    """

    status_code: ClassVar[int] = 400
    code: str = "bad_request"
    message: str = "The request could not be processed."
    registry: ClassVar[list[type[DomainError]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        DomainError.registry.append(cls)

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> None:
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.params = params
        self.headers = headers or {}
        super().__init__(self.message.format_map(_Keep(params)))


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class InvalidInput(DomainError):
    """The request is well-formed but its values are not acceptable (400)."""

    status_code = 400
    code = "invalid_input"
    message = "The request contains invalid values."


class Unauthorized(DomainError):
    """Missing or invalid credentials (401)."""

    status_code = 401
    code = "unauthorized"
    message = "Please sign in."


class Forbidden(DomainError):
    """The caller is known but not allowed to do this (403)."""

    status_code = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class NotFound(DomainError):
    """The resource does not exist, or the caller may not know it exists (404)."""

    status_code = 404
    code = "not_found"
    message = "Not found."


class Conflict(DomainError):
    """The request conflicts with the current state (409)."""

    status_code = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class PayloadTooLarge(DomainError):
    """The request body is larger than the configured limit (413)."""

    status_code = 413
    code = "payload_too_large"
    message = "The request body is too large (limit {limit} bytes)."


class UnsupportedMediaType(DomainError):
    """The body's content type is not the one the endpoint accepts (415)."""

    status_code = 415
    code = "unsupported_media_type"
    message = "Send the request body as {expected}."


class Locked(DomainError):
    """The resource is temporarily locked (423)."""

    status_code = 423
    code = "locked"
    message = "Temporarily locked; try again later."


class RateLimited(DomainError):
    """Too many requests (429)."""

    status_code = 429
    code = "rate_limited"
    message = "Too many requests; please try again later."


class UpstreamUnavailable(DomainError):
    """An outside service we depend on failed or is busy (503)."""

    status_code = 503
    code = "upstream_unavailable"
    message = "A partner service is unavailable; please try again later."


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["未找到。"])
    details: Any = None


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """A router's ``responses=``: each HTTP status in ``codes`` answers an ``ErrorResponse``."""
    return {code: {"model": ErrorResponse} for code in codes}


#: Messages for request-validation error types (pydantic's ``type``), as msgids.
VALIDATION_MESSAGES: dict[str, str] = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field.",
    "string_type": "Must be a string.",
    "string_too_short": "Must be at least {min_length} characters.",
    "string_too_long": "Must be at most {max_length} characters.",
    "string_pattern_mismatch": "Invalid format.",
    "int_type": "Must be an integer.",
    "int_parsing": "Must be an integer.",
    "int_from_float": "Must be an integer.",
    "float_type": "Must be a number.",
    "float_parsing": "Must be a number.",
    "finite_number": "Must be a finite number.",
    "bool_type": "Must be true or false.",
    "bool_parsing": "Must be true or false.",
    "greater_than": "Must be greater than {gt}.",
    "greater_than_equal": "Must be at least {ge}.",
    "less_than": "Must be less than {lt}.",
    "less_than_equal": "Must be at most {le}.",
    "enum": "Must be one of: {expected}.",
    "literal_error": "Must be one of: {expected}.",
    "json_invalid": "The body is not valid JSON.",
    "json_type": "The body is not valid JSON.",
    "model_attributes_type": "Must be a JSON object.",
    "dict_type": "Must be a JSON object.",
    "model_type": "Must be a JSON object.",
    "list_type": "Must be a list.",
    "too_short": "Must have at least {min_length} items.",
    "too_long": "Must have at most {max_length} items.",
    "url_parsing": "Must be a valid URL.",
    "url_type": "Must be a valid URL.",
    "url_scheme": "Must be a valid URL.",
    "datetime_parsing": "Must be a date-time.",
    "datetime_type": "Must be a date-time.",
    "timezone_aware": "Must include a time zone.",
    "uuid_parsing": "Must be a UUID.",
    # Our own PydanticCustomError types.
    "invalid_phone": "Enter a valid mainland China mobile number.",
    "weak_password": "The password is too weak: {reason}",
    "invalid_latitude": "Latitude must be between -90 and 90.",
    "invalid_longitude": "Longitude must be between -180 and 180.",
    "invalid_i18n_text": "Give the text in zh-CN (required) and optionally en, ja, ko.",
    "invalid_geojson": "Invalid GeoJSON polygon: {reason}",
    "value_error": "Invalid value.",
}
GENERIC_FIELD_MESSAGE = "Invalid value."
VALIDATION_SUMMARY = "Some fields are invalid."
#: Extra user-facing texts (reasons filled into the templates above).
EXTRA_MESSAGES: tuple[str, ...] = (
    "at least {min_length} characters",
    "at most {max_length} characters",
    "use both letters and digits",
    "must not contain the phone number",
    "too simple",
    "coordinates must be [lng, lat] within range",
    "not a valid polygon (see details)",
    "send exactly one area",
)
#: User-facing texts that are not error messages (labels, titles, page texts), by domain.
_REGISTERED_TEXTS: set[str] = set()


def register_texts(*msgids: str) -> None:
    """Declare user-facing msgids that no error carries (labels, titles, page texts).

    ``all_messages`` returns them too, so the catalogs must translate them.
    """
    _REGISTERED_TEXTS.update(msgids)


def locale_of(request: Request) -> str:
    """The locale negotiated for this request by the locale middleware (default zh-CN)."""
    return str(getattr(request.state, "locale", "zh-CN"))


def _response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(code=code, message=message, details=details)
    return JSONResponse(
        status_code=status,
        content=jsonable_encoder(body),
        headers={**(headers or {}), "Content-Language": locale_of(request)},
    )


def _translate_params(params: dict[str, Any], locale: str) -> dict[str, Any]:
    # Reasons such as "at least {min_length} characters" are msgids themselves, filled
    # from the same parameters.
    return {
        k: translate(v, locale, **params) if isinstance(v, str) else v for k, v in params.items()
    }


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Map any ``DomainError`` to its status and a translated ``ErrorResponse``."""
    assert isinstance(exc, DomainError)
    locale = locale_of(request)
    message = translate(exc.message, locale, **_translate_params(exc.params, locale))
    return _response(request, exc.status_code, exc.code, message, exc.details, exc.headers)


def _plain(value: Any) -> str | int | float:
    # "at most 90", not "at most 90.0"; anything exotic becomes text.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, str | int | float) else str(value)


def field_errors(errors: Any, locale: str) -> list[dict[str, Any]]:
    """Translate pydantic error dicts to ``{loc, type, message}`` items."""
    out: list[dict[str, Any]] = []
    for err in errors:
        err_type = str(err.get("type", "value_error"))
        ctx = {k: v for k, v in (err.get("ctx") or {}).items() if k != "error"}
        template = VALIDATION_MESSAGES.get(err_type, GENERIC_FIELD_MESSAGE)
        params = _translate_params({k: _plain(v) for k, v in ctx.items()}, locale)
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "type": err_type,
                "message": translate(template, locale, **params),
            }
        )
    return out


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 with one translated message per invalid field (never echoes the raw input)."""
    assert isinstance(exc, RequestValidationError)
    locale = locale_of(request)
    errors = exc.errors()
    # Malformed JSON is a body problem, not a field problem: a plain 400 reads better.
    if errors and all(e.get("type") == "json_invalid" for e in errors):
        return _response(
            request,
            400,
            "malformed_json",
            translate(VALIDATION_MESSAGES["json_invalid"], locale),
            None,
        )
    return _response(
        request,
        422,
        "validation_error",
        translate(VALIDATION_SUMMARY, locale),
        field_errors(errors, locale),
    )


_HTTP_CODES: dict[int, tuple[str, str]] = {
    404: ("not_found", NotFound.message),
    405: ("method_not_allowed", "This method is not allowed here."),
    401: ("unauthorized", Unauthorized.message),
    403: ("forbidden", Forbidden.message),
}


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method) in the same envelope."""
    assert isinstance(exc, StarletteHTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "The request failed."))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette lists only the first matching route's methods; a path served by several
        # routes (GET list + POST create) must list them all.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return _response(
        request,
        exc.status_code,
        code,
        translate(message, locale_of(request)),
        None,
        headers,
    )


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Log the bug with the request id and answer a translated 500 without internals."""
    log.exception("unhandled_error", error=type(exc).__name__)
    return _response(
        request,
        500,
        "internal_error",
        translate("Something went wrong on our side.", locale_of(request)),
        None,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping from exceptions to ``ErrorResponse``."""
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)


def all_messages() -> set[str]:
    """Every user-facing msgid the API can produce (the catalogs must cover them)."""
    classes: list[type[DomainError]] = [DomainError, *DomainError.registry]
    msgs = {cls.message for cls in classes}
    msgs |= set(VALIDATION_MESSAGES.values())
    msgs |= {GENERIC_FIELD_MESSAGE, VALIDATION_SUMMARY, "Something went wrong on our side."}
    msgs |= {m for _, m in _HTTP_CODES.values()} | {"The request failed."}
    msgs |= set(EXTRA_MESSAGES) | _REGISTERED_TEXTS
    return msgs
