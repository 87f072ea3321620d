"""The HTTP API (API Gateway REST, IAM auth): routes typed with pydantic, errors mapped in one place."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from runcreds.exceptions import ConflictError, NotFoundError, TransientAwsError, VerificationFailedError
from runcreds.logic.attach import AttachService
from runcreds.models.api import AttachRequest, IntegrationCreate
from runcreds.observability import logger
from runcreds.settings import AttachSettings

SLUG = r"^[a-z0-9-]{1,63}$"
INTEGRATION_ID = r"^[0-9A-Z]{26}$"

app = APIGatewayRestResolver(enable_validation=True)

Account = Annotated[str, Path(pattern=SLUG, description="account slug")]
Stack = Annotated[str, Path(pattern=SLUG, description="stack slug")]
IntegrationIdPath = Annotated[str, Path(pattern=INTEGRATION_ID, description="integration ID")]


def service() -> AttachService:
    return AttachService(AttachSettings.from_env())


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


@app.post("/accounts/<account>/integrations")
def create_integration(account: Account, body: Annotated[IntegrationCreate, Body()]) -> tuple[dict[str, Any], int]:
    return service().create_integration(account, body).to_api(), 201


@app.get("/accounts/<account>/integrations")
def list_integrations(account: Account) -> dict[str, Any]:
    return {"integrations": [i.to_api() for i in service().integrations.list(account)]}


@app.get("/accounts/<account>/integrations/<integration_id>")
def get_integration(account: Account, integration_id: IntegrationIdPath) -> dict[str, Any]:
    return service().integrations.get(account, integration_id).to_api()


@app.put("/accounts/<account>/stacks/<stack>/integrations/<integration_id>")
def attach_integration(
    account: Account, stack: Stack, integration_id: IntegrationIdPath, body: Annotated[AttachRequest, Body()]
) -> dict[str, Any]:
    return service().attach(account, stack, integration_id, body).to_api()


@app.get("/accounts/<account>/stacks/<stack>/integrations")
def list_attachments(account: Account, stack: Stack) -> dict[str, Any]:
    return {"attachments": [a.to_api() for a in service().attachments.list_for_stack(account, stack)]}


@app.delete("/accounts/<account>/stacks/<stack>/integrations/<integration_id>")
def detach_integration(account: Account, stack: Stack, integration_id: IntegrationIdPath) -> Response[str]:
    service().attachments.delete(account, stack, integration_id)
    return Response(status_code=204, body="")
