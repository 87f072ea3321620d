"""The HTTP API (API Gateway REST, IAM auth): routes typed with pydantic, errors mapped in one place."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from runcreds.exceptions import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    TransientAwsError,
    VerificationFailedError,
)
from runcreds.logic.attach import AttachService
from runcreds.models.api import (
    AttachmentList,
    AttachmentOut,
    AttachRequest,
    DiagnosisBody,
    ErrorBody,
    IntegrationCreate,
    IntegrationList,
    IntegrationOut,
    IntegrationUpdate,
    TrustPolicyDocument,
)
from runcreds.models.entities import Attachment, Integration
from runcreds.observability import logger
from runcreds.settings import AttachSettings

SLUG = r"^[a-z0-9-]{1,63}$"
INTEGRATION_ID = r"^[0-9A-Z]{26}$"
ROLE_ARN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$"
TITLE = "runcreds attach API"
VERSION = "1"

app = APIGatewayRestResolver(enable_validation=True)

Account = Annotated[str, Path(pattern=SLUG, description="account slug")]
Stack = Annotated[str, Path(pattern=SLUG, description="stack slug")]
IntegrationIdPath = Annotated[str, Path(pattern=INTEGRATION_ID, description="integration ID")]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PhaseName = Literal["plan", "apply", "destroy", "task", "drift", "read", "write"]


def service() -> AttachService:
    context = getattr(app, "lambda_context", None)
    time_left = context.get_remaining_time_in_millis() / 1000 if context is not None else None
    return AttachService(AttachSettings.from_env(), time_left=time_left)


def _json(model: type[Any], description: str) -> OpenAPIResponse:
    return {"description": description, "content": {content_types.APPLICATION_JSON: {"model": model}}}


def _responses(success: int, model: type[Any] | None, description: str, *errors: int) -> dict[int, OpenAPIResponse]:
    texts = {
        400: "invalid request: `message` says what and `errors` where",
        404: "no such integration or attachment in this account (or no such route)",
        409: "conflicts with the current state (`message` says how to resolve it)",
        415: "the body is not application/json",
        503: "AWS throttled or failed: retry in a few seconds",
    }
    # Every route may answer 400 (bad input) and 404 (a path no route matches, or an unknown resource).
    responses: dict[int, OpenAPIResponse] = {
        success: _json(model, description) if model is not None else {"description": description},
        400: _json(ErrorBody, texts[400]),
        404: _json(ErrorBody, texts[404]),
    }
    for code in errors:
        if code == 422:
            responses[422] = _json(DiagnosisBody, "the role refused the broker: the diagnosis says what to change")
        else:
            responses[code] = _json(ErrorBody, texts[code])
    return responses


def _error(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message, **extra})


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response[dict[str, Any]]:
    problems = [
        {"location": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "invalid")}
        for e in error.errors()
    ]
    summary = "; ".join(f"{p['location']}: {p['problem']}" for p in problems)
    return _error(400, f"invalid request: {summary}", errors=problems)


@app.exception_handler(InvalidRequestError)
def _bad_request(error: InvalidRequestError) -> Response[dict[str, Any]]:
    return _error(400, str(error))


@app.exception_handler(NotFoundError)
def _not_found(error: NotFoundError) -> Response[dict[str, Any]]:
    return _error(404, str(error))


@app.exception_handler(ConflictError)
def _conflict(error: ConflictError) -> Response[dict[str, Any]]:
    return _error(409, str(error))


@app.exception_handler(VerificationFailedError)
def _verification_failed(error: VerificationFailedError) -> Response[dict[str, Any]]:
    return _error(422, str(error), **error.diagnosis)


@app.exception_handler(TransientAwsError)
def _transient(error: TransientAwsError) -> Response[dict[str, Any]]:
    logger.warning("transient AWS failure", extra={"error": str(error)})
    return _error(503, "AWS is throttling or unavailable; retry in a few seconds")


def _integration(integration: Integration) -> IntegrationOut:
    return IntegrationOut.model_validate(integration.to_api())


def _attachment(attachment: Attachment) -> AttachmentOut:
    return AttachmentOut.model_validate(attachment.to_api())


# ---------------------------------------------------------------------- integrations
@app.post(
    "/accounts/<account>/integrations",
    summary="Create an integration (a customer role runcreds may assume)",
    responses=_responses(201, IntegrationOut, "the integration, with its id", 415, 503),
)
def create_integration(account: Account, body: Annotated[IntegrationCreate, Body()]) -> Response[IntegrationOut]:
    created = service().create_integration(account, body)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=_integration(created))


@app.get(
    "/accounts/<account>/integrations",
    summary="List the account's integrations",
    responses=_responses(200, IntegrationList, "the integrations", 503),
)
def list_integrations(
    account: Account,
    label: Annotated[str | None, Query(min_length=1, max_length=64, description="only those with this label")] = None,
) -> IntegrationList:
    return IntegrationList(integrations=[_integration(i) for i in service().list_integrations(account, label)])


@app.get(
    "/accounts/<account>/integrations/<integration_id>",
    summary="Show an integration",
    responses=_responses(200, IntegrationOut, "the integration", 404, 503),
)
def get_integration(account: Account, integration_id: IntegrationIdPath) -> IntegrationOut:
    return _integration(service().integrations.get(account, integration_id))


@app.patch(
    "/accounts/<account>/integrations/<integration_id>",
    summary="Change an integration (every attachment follows; attached stacks are verified first)",
    responses=_responses(200, IntegrationOut, "the changed integration", 409, 415, 422, 503),
)
def update_integration(
    account: Account, integration_id: IntegrationIdPath, body: Annotated[IntegrationUpdate, Body()]
) -> IntegrationOut:
    return _integration(service().update_integration(account, integration_id, body))


@app.delete(
    "/accounts/<account>/integrations/<integration_id>",
    summary="Delete an integration that is attached to no stack",
    responses=_responses(204, None, "deleted", 404, 409, 503),
)
def delete_integration(account: Account, integration_id: IntegrationIdPath) -> Response[str]:
    service().delete_integration(account, integration_id)
    return Response(status_code=204, body="")


@app.get(
    "/accounts/<account>/integrations/<integration_id>/trust-policy",
    summary="The trust policy the integration's role needs",
    responses=_responses(200, TrustPolicyDocument, "an IAM trust policy document", 404, 503),
)
def get_trust_policy(
    account: Account,
    integration_id: IntegrationIdPath,
    stack: Annotated[str | None, Query(pattern=SLUG, description="narrow to one stack")] = None,
    phase: Annotated[PhaseName | None, Query(description="narrow to a stack's read or write phases")] = None,
    worker_role_arn: Annotated[
        str | None, Query(pattern=ROLE_ARN, max_length=2048, description="worker-mode integrations: the principal")
    ] = None,
) -> TrustPolicyDocument:
    document = service().trust_policy(account, integration_id, stack, phase, worker_role_arn)
    return TrustPolicyDocument.model_validate(document)


# ---------------------------------------------------------------------- attachments
@app.put(
    "/accounts/<account>/stacks/<stack>/integrations/<integration_id>",
    summary="Attach an integration to a stack (verified: the broker assumes the role as a vend would)",
    responses=_responses(200, AttachmentOut, "the attachment", 415, 422, 503),
)
def attach_integration(
    account: Account, stack: Stack, integration_id: IntegrationIdPath, body: Annotated[AttachRequest, Body()]
) -> AttachmentOut:
    return _attachment(service().attach(account, stack, integration_id, body))


@app.get(
    "/accounts/<account>/stacks/<stack>/integrations",
    summary="The stack's attachments, with their verification status",
    responses=_responses(200, AttachmentList, "the attachments", 503),
)
def list_attachments(account: Account, stack: Stack) -> AttachmentList:
    return AttachmentList(attachments=[_attachment(a) for a in service().list_attachments(account, stack)])


@app.delete(
    "/accounts/<account>/stacks/<stack>/integrations/<integration_id>",
    summary="Detach an integration from a stack",
    responses=_responses(204, None, "detached", 404, 503),
)
def detach_integration(account: Account, stack: Stack, integration_id: IntegrationIdPath) -> Response[str]:
    service().detach(account, stack, integration_id)
    return Response(status_code=204, body="")


def resolve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The function's entry point. A body that is not JSON is refused here with 415: Powertools'
    validation would raise on some (multipart without a boundary) before any route or handler runs."""
    if event.get("httpMethod") in _BODY_METHODS and event.get("body"):
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        media_type = str(headers.get("content-type") or "application/json").split(";", 1)[0].strip().lower()
        if media_type != content_types.APPLICATION_JSON:
            return {
                "statusCode": 415,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": json.dumps({"message": f"send the body as application/json, not {media_type}"}),
                "isBase64Encoded": False,
            }
    return app.resolve(event, context)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of this API as committed in docs/openapi.json (`make openapi`)."""
    from aws_lambda_powertools.event_handler.openapi.models import Server, ServerVariable

    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=VERSION,
            description=(
                "Integrations (customer roles) and their attachments to stacks (docs/attach.md). Every request "
                "is signed with AWS Signature Version 4 for the execute-api service: API Gateway checks it against "
                "IAM (AWS_IAM authorizer) before the request reaches runcreds."
            ),
            servers=[
                Server(
                    url="https://{api_id}.execute-api.{region}.amazonaws.com/v1",
                    description="the stack's ApiUrl output",
                    variables={
                        "api_id": ServerVariable(default="abc123", description="the RuncredsApi ID"),
                        "region": ServerVariable(default="us-east-1", description="the stack's region"),
                    },
                )
            ],
        )
    )
    # Powertools documents its own 422 (HTTPValidationError) on every route; this API answers invalid
    # input with 400 (ErrorBody) and uses 422 only for a refused verification, declared per route.
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422", {})
            schema = response.get("content", {}).get(content_types.APPLICATION_JSON, {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
            # 204 has no body (Powertools documents the handler's Response[str] as one).
            operation.get("responses", {}).get("204", {}).pop("content", None)
    schemas = document.get("components", {}).get("schemas", {})
    text = json.dumps(document["paths"])
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        if f'/{name}"' not in text:
            schemas.pop(name, None)
    return document


def openapi_json() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # `make openapi`
    sys.stdout.write(openapi_json())
