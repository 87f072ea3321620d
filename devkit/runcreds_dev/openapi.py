"""The OpenAPI document of the whole HTTP API, as committed in docs/openapi.json (`make openapi`).

API Gateway serves one API (RuncredsApi) from three functions: the attach routes (runcreds.routes.attach), the
audit routes (runcreds.routes.audit) and the OIDC issuer's public documents (runcreds.routes.oidc). The
functions route with runcreds' own router (runcreds.routes.router); for the document, each router's routes
are declared again on a Powertools resolver, with the same signatures (runcreds' parameter markers become
Powertools' Path, Query and Body), and Powertools' generator writes each part. This module joins them.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, content_types
from aws_lambda_powertools.event_handler import Response as PowertoolsResponse
from aws_lambda_powertools.event_handler.openapi import params as powertools_params
from aws_lambda_powertools.event_handler.openapi.models import Server, ServerVariable

from runcreds.routes.router import Response, Route, Router

TITLE = "runcreds API"
VERSION = "1"
DESCRIPTION = (
    "Integrations (customer roles), their attachments to stacks (docs/attach.md) and the audit index of "
    "what runs did in AWS (docs/audit.md). Every request is signed with AWS Signature Version 4 for the "
    "execute-api service: API Gateway checks it against IAM (AWS_IAM authorizer) before the request "
    "reaches runcreds."
)
SERVERS = [
    Server(
        url="https://{api_id}.execute-api.{region}.amazonaws.com/v1",
        description="the stack's ApiUrl output",
        variables={
            "api_id": ServerVariable(default="abc123", description="the RuncredsApi ID"),
            "region": ServerVariable(default="us-east-1", description="the stack's region"),
        },
    )
]
_POWERTOOLS_ERRORS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


_MARKERS = {"path": powertools_params.Path, "query": powertools_params.Query, "body": powertools_params.Body}


def _declared(route: Route) -> Callable[..., Any]:
    """The route's function as Powertools reads it: the same name, docstring and signature, with each
    parameter's marker as Powertools' own (its constraints as they are) and Response as Powertools'."""

    def declared(**_: Any) -> Any:
        raise NotImplementedError("declared for the OpenAPI document only")

    parameters = [
        inspect.Parameter(
            param.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=param.default,
            annotation=Annotated[param.annotation, _MARKERS[param.marker.location](**param.marker.constraints)],
        )
        for param in route.params()
    ]
    returns = inspect.signature(route.function, eval_str=True).return_annotation
    if get_origin(returns) is Response:
        returns = PowertoolsResponse[get_args(returns)]  # type: ignore[misc]
    declared.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    for name in ("__name__", "__qualname__", "__module__", "__doc__"):
        setattr(declared, name, getattr(route.function, name))
    return declared


def _resolver(router: Router) -> APIGatewayRestResolver:
    resolver = APIGatewayRestResolver(enable_validation=True)
    for route in router.routes:
        resolver.route(
            route.path, route.method, summary=route.summary, description=route.description,
            responses=dict(route.responses),
        )(_declared(route))  # fmt: skip
    return resolver


def _part(router: Router) -> dict[str, Any]:
    app = _resolver(router)
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title=TITLE, version=VERSION, description=DESCRIPTION, servers=SERVERS)
    )
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            # Powertools documents its own 422 (HTTPValidationError) on every route; this API answers
            # invalid input with 400 (ErrorBody) and uses 422 only for a refused verification.
            response = operation.get("responses", {}).get("422", {})
            schema = response.get("content", {}).get(content_types.APPLICATION_JSON, {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
            # 204 has no body (Powertools documents the handler's Response[str] as one).
            operation.get("responses", {}).get("204", {}).pop("content", None)
    return document


def openapi_document() -> dict[str, Any]:
    from runcreds.routes.attach import app as attach_app
    from runcreds.routes.audit import app as audit_app
    from runcreds.routes.oidc import app as oidc_app

    document = _part(attach_app)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for part in (_part(audit_app), _part(oidc_app)):
        for name, schema in part.get("components", {}).get("schemas", {}).items():
            if schemas.setdefault(name, schema) != schema:
                raise ValueError(f"two different OpenAPI schemas are both named {name}")
        for path, operations in part["paths"].items():
            if path in document["paths"]:
                raise ValueError(f"{path} is served by two functions")
            document["paths"][path] = operations
    text = json.dumps(document["paths"])
    for name in _POWERTOOLS_ERRORS:
        if f'/{name}"' not in text:
            schemas.pop(name, None)
    return document


def openapi_json() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # `make openapi`
    sys.stdout.write(openapi_json())
