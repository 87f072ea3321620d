"""runcreds' own router for API Gateway REST proxy events, in place of Powertools' validating resolver.

Importing Powertools' event handler (every resolver it has, its OpenAPI models and their pydantic
schemas) and building each route's dependant on its first request were the largest part of the API
functions' cold starts (docs/PERFORMANCE.md). This router does only what the API uses:
- routes declared with decorators (`@app.get("/accounts/<account>/integrations", ...)`), matched on the
  method and the event's `path`;
- a route's parameters typed with `Annotated[..., PathParam(...)]`, `QueryParam(...)` or `Body()`:
  their constraints are pydantic's Field arguments, validated by one pydantic model per route, built on
  the route's first request. Any failure is a RequestValidationError naming each problem's location
  (`path.account`, `query.limit`, `body.role_arn`), which runcreds.routes.shared answers with a 400;
- a route returns a pydantic model (200, JSON) or a Response;
- errors answered by the handler registered for the nearest class in the error's MRO; an error with no
  handler propagates (API Gateway's 502: a bug).

The OpenAPI document is generated from the same routes (runcreds_dev.openapi, not part of the layer).
"""

from __future__ import annotations

import base64
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

APPLICATION_JSON = "application/json"
_SEGMENT = r"[^/\x00-\x1f\x7f]+"  # a path parameter's value: no slash, no control character


class RequestValidationError(Exception):
    """A request that does not fit its route: pydantic's error dicts, with `loc` starting at the location."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} validation errors")
        self._errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


class UnsupportedMediaTypeError(Exception):
    """A body sent as something other than JSON: runcreds.routes.shared answers it with a 415."""


class Param:
    """Where a route parameter comes from, and its constraints (pydantic Field arguments: pattern,
    min_length, max_length, ge, le, description, json_schema_extra)."""

    location = ""

    def __init__(self, **constraints: Any) -> None:
        self.constraints = constraints


class PathParam(Param):
    location = "path"


class QueryParam(Param):
    location = "query"


class Body(Param):
    """The JSON request body, validated as the parameter's model."""

    location = "body"


@dataclass
class Response[T]:
    """A route's answer when it is not a plain 200 with a model: its status, body and headers."""

    status_code: int
    body: T | None = None
    content_type: str | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RouteParam:
    name: str
    marker: Param
    annotation: Any  # the type without its marker (Annotated with the other metadata, if any)
    default: Any  # inspect.Parameter.empty when required


@dataclass
class Route:
    method: str
    path: str  # "/accounts/<account>/integrations"
    function: Callable[..., Any]
    summary: str | None
    description: str | None
    responses: Mapping[int, Any]
    _params: list[RouteParam] | None = field(default=None, repr=False)
    _model: type[BaseModel] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Matched whole (fullmatch: `$` would also match before a final newline). Trailing slashes are the
        # same route, as API Gateway REST routes them to the resource without one.
        pieces = re.split(r"<(\w+)>", self.path)  # literal, name, literal, name, ..., literal
        self.regex = re.compile(
            "".join(f"(?P<{piece}>{_SEGMENT})" if i % 2 else re.escape(piece) for i, piece in enumerate(pieces)) + "/*"
        )

    @property
    def openapi_path(self) -> str:
        return re.sub(r"<(\w+)>", r"{\1}", self.path)

    def params(self) -> list[RouteParam]:
        """The route's parameters, read from its signature (with their markers) on first use."""
        if self._params is None:
            hints = get_type_hints(self.function, include_extras=True)
            found = []
            for name, parameter in inspect.signature(self.function).parameters.items():
                annotation = hints[name]
                markers = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Param)]
                if len(markers) != 1:
                    raise TypeError(
                        f"{self.function.__name__}({name}): annotate it with one PathParam, QueryParam or Body"
                    )
                others = tuple(m for m in annotation.__metadata__ if not isinstance(m, Param))
                base = get_args(annotation)[0]
                found.append(
                    RouteParam(name, markers[0], Annotated[(base, *others)] if others else base, parameter.default)
                )
            self._params = found
        return self._params

    def model(self) -> type[BaseModel]:
        """One pydantic model for every parameter: path and query values as pydantic's lax mode reads
        strings ("5" for an int, "true" for a bool), the body as its own model would."""
        if self._model is None:
            fields: dict[str, Any] = {}
            for param in self.params():
                constraints = param.marker.constraints
                default = ... if param.default is inspect.Parameter.empty else param.default
                fields[param.name] = (Annotated[param.annotation, Field(**constraints)], default)
            self._model = create_model(
                f"{self.function.__name__}_request", __config__=ConfigDict(extra="ignore"), **fields
            )
        return self._model

    def arguments(self, event: Mapping[str, Any], path_values: Mapping[str, str]) -> dict[str, Any]:
        """The route function's arguments from the event, validated; RequestValidationError if they are not."""
        params = self.params()
        values: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        query = _query(event)
        for param in params:
            location = param.marker.location
            if location == "path":
                values[param.name] = path_values[param.name]
            elif location == "query" and param.name in query:
                given = query[param.name]
                if len(given) > 1:
                    errors.append(_error(("query", param.name), "give this parameter once", "multiple_values"))
                else:
                    values[param.name] = given[0]
            elif location == "body":
                body = _json_body(event)
                if body is not None:
                    values[param.name] = body
        if errors:
            raise RequestValidationError(errors)
        try:
            validated = self.model().model_validate(values)
        except ValidationError as invalid:
            # The input is left out of the errors: a value that failed may be a token.
            problems = invalid.errors(include_url=False, include_input=False, include_context=False)
            located = {p.name: p.marker.location for p in params}
            raise RequestValidationError([{**e, "loc": _location(located, e["loc"])} for e in problems]) from None
        return {p.name: getattr(validated, p.name) for p in params}


def _location(located: Mapping[str, str], loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Where a problem is, from where the request model saw it (`located`: each parameter's location):
    ("path", "account"), ("query", "limit"), ("body", "role_arn", ...) — the body's own fields under
    "body", not under the parameter's name."""
    if not loc or str(loc[0]) not in located:
        return ("request", *loc)
    where = located[str(loc[0])]
    return (where, *loc[1:]) if where == "body" else (where, *loc)


def _error(loc: tuple[Any, ...], message: str, kind: str) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": message}


def _query(event: Mapping[str, Any]) -> dict[str, list[str]]:
    """The query string's values by name (API Gateway's multi-value form when it is there)."""
    multi = event.get("multiValueQueryStringParameters") or {}
    single = event.get("queryStringParameters") or {}
    values = {**{k: [v] for k, v in single.items()}, **{k: list(v or ()) for k, v in multi.items()}}
    present = {k: [str(v) for v in given if v is not None] for k, given in values.items()}
    return {k: given for k, given in present.items() if given}


def _json_body(event: Mapping[str, Any]) -> Any:
    """The body parsed as JSON; None for no body. Sent as another media type: UnsupportedMediaTypeError
    (a form or multipart body is not parsed at all). Not JSON: a RequestValidationError at `body`."""
    raw = event.get("body")
    if not raw:
        return None
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    media_type = str(headers.get("content-type") or APPLICATION_JSON).split(";", 1)[0].strip().lower()
    if media_type != APPLICATION_JSON:
        raise UnsupportedMediaTypeError(f"send the body as {APPLICATION_JSON}, not {media_type[:100]}")
    if not isinstance(raw, str):  # API Gateway's body is a string or null
        raise RequestValidationError([_error(("body",), "the body is not a JSON text", "body_invalid")])
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True).decode()
        except ValueError:  # binascii.Error, a character outside base64's, UnicodeDecodeError
            raise RequestValidationError(
                [_error(("body",), "the body is not valid base64 UTF-8", "body_invalid")]
            ) from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as invalid:
        raise RequestValidationError(
            [_error(("body", invalid.pos), f"JSON decode error: {invalid.msg}", "json_invalid")]
        ) from None
    except (ValueError, RecursionError):  # an integer past 4,300 digits; nesting past the recursion limit
        raise RequestValidationError(
            [_error(("body",), "the body is JSON this API cannot read", "json_invalid")]
        ) from None


class Router:
    """The routes of one function, and the handlers of the errors they raise."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.error_handlers: dict[type[Exception], Callable[[Any], Response[Any]]] = {}
        self.event: Mapping[str, Any] = {}
        self.lambda_context: Any = None

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str | None = None,
        description: str | None = None,
        responses: Mapping[int, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self.routes.append(Route(method, path, function, summary, description, responses or {}))
            return function

        return register

    def get(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("DELETE", path, **options)

    def exception_handler(self, kind: type[Exception], handler: Callable[[Any], Response[Any]]) -> None:
        self.error_handlers[kind] = handler

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """The proxy integration's answer to `event`."""
        self.event, self.lambda_context = event, context
        try:
            return _proxy_answer(self._serve(event))
        except Exception as failure:
            handler = next((self.error_handlers[k] for k in type(failure).__mro__ if k in self.error_handlers), None)
            if handler is None:
                raise
            return _proxy_answer(handler(failure))

    def _serve(self, event: Mapping[str, Any]) -> Response[Any]:
        method, path = str(event.get("httpMethod") or "").upper(), str(event.get("path") or "")
        for route in self.routes:
            matched = route.regex.fullmatch(path) if route.method == method else None
            if matched:
                result = route.function(**route.arguments(event, matched.groupdict()))
                return result if isinstance(result, Response) else Response(200, result)
        return Response(404, {"message": "no such route: check the method and the path"})  # neither echoed


def _proxy_answer(response: Response[Any]) -> dict[str, Any]:
    body = response.body
    content_type = response.content_type
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json", by_alias=True)
    if body is not None and not isinstance(body, str):
        body, content_type = json.dumps(body, separators=(",", ":")), content_type or APPLICATION_JSON
    headers = {**({"Content-Type": content_type} if content_type else {}), **(response.headers or {})}
    return {
        "statusCode": response.status_code,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "body": body or "",
        "isBase64Encoded": False,
    }
