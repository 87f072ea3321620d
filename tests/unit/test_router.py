"""runcreds' own router (runcreds.routes.router): what it does beyond the API's routes, which the other tests
cover through it (test_error_answers, test_generated_input, the integration tests through the gateway)."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict

from runcreds.routes.router import (
    Body,
    PathParam,
    QueryParam,
    RequestValidationError,
    Response,
    Router,
    UnsupportedMediaTypeError,
)


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    size: int = 1


app = Router()


@app.get("/things/<thing_id>", summary="a thing")
def get_thing(
    thing_id: Annotated[str, PathParam(pattern=r"^t\d+$")],
    limit: Annotated[int, QueryParam(ge=1, le=10)] = 5,
    verbose: Annotated[bool, QueryParam()] = False,
) -> dict[str, Any]:
    return {"thing_id": thing_id, "limit": limit, "verbose": verbose}


@app.post("/things")
def create_thing(body: Annotated[Thing, Body()]) -> Response[Thing]:
    return Response(201, body, headers={"Location": f"/things/{body.name}"})


@app.patch("/things/<thing_id>")
def touch_thing(thing_id: Annotated[str, PathParam()], body: Annotated[Thing | None, Body()] = None) -> Thing:
    return body or Thing(name=thing_id)


def event(method: str, path: str, query: dict[str, list[str]] | None = None, body: str | None = None) -> dict[str, Any]:
    return {
        "httpMethod": method,
        "path": path,
        "multiValueQueryStringParameters": query,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "body": body,
        "isBase64Encoded": False,
    }


def answer(request: dict[str, Any]) -> tuple[int, Any, dict[str, list[str]]]:
    try:
        response = app.resolve(request, None)
    except RequestValidationError as invalid:  # no handler registered here: the test reads the errors
        return 400, [(".".join(map(str, e["loc"])), e["type"]) for e in invalid.errors()], {}
    body = json.loads(response["body"]) if response["body"] else None
    return response["statusCode"], body, response["multiValueHeaders"]


def test_path_and_query_values_are_validated_as_typed() -> None:
    assert answer(event("GET", "/things/t1", {"limit": ["3"], "verbose": ["true"]}))[:2] == (
        200,
        {"thing_id": "t1", "limit": 3, "verbose": True},
    )
    assert answer(event("GET", "/things/t1"))[1] == {"thing_id": "t1", "limit": 5, "verbose": False}


@pytest.mark.parametrize(
    ("path", "query", "problems"),
    [
        ("/things/x1", None, [("path.thing_id", "string_pattern_mismatch")]),
        ("/things/t1", {"limit": ["11"]}, [("query.limit", "less_than_equal")]),
        ("/things/t1", {"limit": ["many"]}, [("query.limit", "int_parsing")]),
        ("/things/x", {"limit": ["0"]},
         [("path.thing_id", "string_pattern_mismatch"), ("query.limit", "greater_than_equal")]),
        # a scalar given twice is refused, not silently narrowed to one of its values
        ("/things/t1", {"limit": ["2", "3"]}, [("query.limit", "multiple_values")]),
    ],
)  # fmt: skip
def test_invalid_path_and_query_values_name_their_location(
    path: str, query: dict[str, list[str]] | None, problems: list[tuple[str, str]]
) -> None:
    assert answer(event("GET", path, query)) == (400, problems, {})


def test_a_body_is_validated_as_its_model_and_a_response_keeps_its_status_and_headers() -> None:
    status, body, headers = answer(event("POST", "/things", body='{"name": "t2"}'))
    assert (status, body) == (201, {"name": "t2", "size": 1})
    assert headers == {"Content-Type": ["application/json"], "Location": ["/things/t2"]}
    # base64-encoded as API Gateway sends a binary-typed body
    encoded = event("POST", "/things", body=base64.b64encode(b'{"name": "t3", "size": 2}').decode())
    assert answer(encoded | {"isBase64Encoded": True})[:2] == (201, {"name": "t3", "size": 2})


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        (None, [("body", "missing")]),
        ("null", [("body", "missing")]),
        ('{"name": "t", "size": "2"}', [("body.size", "int_type")]),
        ('{"name": "t", "colour": "red"}', [("body.colour", "extra_forbidden")]),
        ("[1]", [("body", "model_type")]),
        ('{"name": ', [("body.9", "json_invalid")]),  # at character 9
    ],
)
def test_an_invalid_body_names_its_location(body: str | None, problems: list[tuple[str, str]]) -> None:
    assert answer(event("POST", "/things", body=body)) == (400, problems, {})


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "t", "size": ' + "9" * 4301 + "}",  # json.loads: ValueError, past int's 4,300 digits
        '{"name": "t", "size": ' + "[" * 50_000 + "]" * 50_000 + "}",  # json.loads: RecursionError
    ],
    ids=["an integer of 4,301 digits", "50,000 levels of nesting"],
)
def test_a_body_json_cannot_read_is_a_400_not_an_unhandled_error(body: str) -> None:
    status, problems, _ = answer(event("POST", "/things", body=body))
    assert (status, problems) == (400, [("body", "json_invalid")])


def test_a_base64_body_that_is_not_base64_is_a_400() -> None:
    for body in (
        "not base64!",
        base64.b64encode(b'{"name": "t"}').decode() + "\u00e9",
        base64.b64encode(b"\xff").decode(),
    ):
        assert answer(event("POST", "/things", body=body) | {"isBase64Encoded": True}) == (
            400, [("body", "body_invalid")], {}
        ), body  # fmt: skip


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded"])
def test_a_body_sent_as_another_media_type_is_refused_unread(content_type: str) -> None:
    request = event("POST", "/things", body='{"name": "t"}') | {"headers": {"content-TYPE": content_type}}
    with pytest.raises(UnsupportedMediaTypeError, match=content_type):
        app.resolve(request, None)


def test_a_json_body_may_name_its_charset() -> None:
    request = event("POST", "/things", body='{"name": "t"}') | {
        "headers": {"Content-Type": "Application/JSON; charset=utf-8"}
    }
    assert answer(request)[:2] == (201, {"name": "t", "size": 1})


def test_an_optional_body_may_be_left_out() -> None:
    assert answer(event("PATCH", "/things/a"))[:2] == (200, {"name": "a", "size": 1})
    assert answer(event("PATCH", "/things/a", body='{"name": "b"}'))[:2] == (200, {"name": "b", "size": 1})


def test_a_trailing_slash_is_the_same_route_as_api_gateway_routes_it() -> None:
    assert answer(event("GET", "/things/t1/"))[:2] == answer(event("GET", "/things/t1"))[:2]
    assert answer(event("GET", "/things/t1//"))[0] == 200


@pytest.mark.parametrize("path", ["/things/t1\n", "/things/t1\n/", "/things//t1", "/things/t1/x", "/things"])
def test_a_path_that_only_resembles_a_route_is_a_404(path: str) -> None:
    assert answer(event("GET", path))[0] == 404


def test_a_route_path_is_matched_literally() -> None:
    router = Router()
    router.get("/.well-known/jwks.json")(lambda: {"keys": []})
    assert router.resolve(event("GET", "/.well-known/jwks.json"), None)["statusCode"] == 200
    assert router.resolve(event("GET", "/Xwell-known/jwksXjson"), None)["statusCode"] == 404


def test_no_route_is_a_404_with_a_message_and_the_method_counts() -> None:
    assert answer(event("GET", "/nothing"))[0] == 404
    status, body, _ = answer(event("DELETE", "/things/t1"))
    assert status == 404 and body["message"] and "t1" not in body["message"]  # the path is not echoed


def test_malformed_events_are_refused_not_raised() -> None:
    """API Gateway never sends these; a test harness or a direct invoke might."""
    assert answer(event("GET", "/things/t1") | {"multiValueQueryStringParameters": {"limit": None}})[0] == 200
    assert (
        answer(event("GET", "/things/t1") | {"multiValueQueryStringParameters": {"limit": [None, "3"]}})[1]["limit"]
        == 3
    )
    assert answer(event("POST", "/things") | {"body": {"name": "t"}}) == (400, [("body", "body_invalid")], {})


def test_an_error_is_answered_by_the_handler_of_its_nearest_class_and_others_propagate() -> None:
    router = Router()

    @router.get("/fail/<kind>")
    def fail(kind: Annotated[str, PathParam()]) -> None:
        raise {"key": KeyError, "lookup": LookupError, "value": ValueError}[kind]("no")

    router.exception_handler(LookupError, lambda e: Response(409, {"message": type(e).__name__}))
    assert router.resolve(event("GET", "/fail/key"), None)["body"] == '{"message":"KeyError"}'
    assert router.resolve(event("GET", "/fail/lookup"), None)["statusCode"] == 409
    with pytest.raises(ValueError, match="no"):
        router.resolve(event("GET", "/fail/value"), None)


def test_a_parameter_without_a_marker_is_refused_on_first_use() -> None:
    router = Router()

    @router.get("/x/<name>")
    def unmarked(name: str) -> None: ...

    with pytest.raises(TypeError, match="unmarked"):
        router.resolve(event("GET", "/x/a"), None)


def test_a_value_that_failed_is_not_kept_in_the_error() -> None:
    """The value may be a token (a refresh body's web_identity_token): it goes nowhere, not even into
    the exception a handler or a log could show."""
    with pytest.raises(RequestValidationError) as raised:
        app.routes[1].arguments(event("POST", "/things", body='{"name": "t", "size": "SECRET-VALUE"}'), {})
    assert [e["loc"] for e in raised.value.errors()] == [("body", "size")]
    assert "SECRET-VALUE" not in repr(raised.value.errors())
