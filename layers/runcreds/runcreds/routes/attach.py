"""The HTTP API (API Gateway REST, IAM auth): routes typed with pydantic, errors mapped in one place."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Literal

from runcreds.logic import oidc
from runcreds.models.bodies import (
    AttachmentList,
    AttachmentOut,
    AttachRequest,
    IntegrationCreate,
    IntegrationList,
    IntegrationOut,
    IntegrationUpdate,
    RefreshedCredentials,
    RefreshRequest,
    RefreshResponse,
    TrustPolicyDocument,
)
from runcreds.models.entities import INTEGRATION_ID_PATTERN, ROLE_ARN_PATTERN, Attachment, Integration
from runcreds.models.run import RUN_ID_PATTERN, SLUG_PATTERN, Phase, RunPhase
from runcreds.routes import shared as http
from runcreds.routes.router import APPLICATION_JSON, Body, PathParam, QueryParam, Response, Router
from runcreds.routes.shared import Account, Stack
from runcreds.settings import AttachSettings

if TYPE_CHECKING:
    from runcreds.logic.attach import AttachService
    from runcreds.logic.integrations import IntegrationService

app = Router()

IntegrationIdPath = Annotated[str, PathParam(pattern=INTEGRATION_ID_PATTERN, description="integration ID")]
PhaseName = Literal["plan", "apply", "destroy", "task", "drift", "read", "write"]


def _time_left() -> float | None:
    context = getattr(app, "lambda_context", None)
    return context.get_remaining_time_in_millis() / 1000 if context is not None else None


# The services are imported by the routes that use them: a cold start pays only for its own route's
# (verification's probes and rules, the refresh's sealing, the worker token's signing are apart).
def integration_service() -> IntegrationService:
    from runcreds.logic.integrations import IntegrationService

    settings = AttachSettings.from_env()
    return IntegrationService(settings, time_left=_time_left(), issuer=_issuer(settings))


def attach_service() -> AttachService:
    from runcreds.logic.attach import AttachService

    settings = AttachSettings.from_env()
    return AttachService(settings, time_left=_time_left(), issuer=_issuer(settings))


def _issuer(settings: AttachSettings) -> str | None:
    """The OIDC issuer: configured, or this API's own URL from the request (not from the template: a cycle)."""
    request_context = app.event.get("requestContext")
    try:
        return oidc.issuer_url(settings.oidc_issuer_url, request_context, os.environ.get("AWS_REGION", "us-east-1"))
    except ValueError:
        return None


http.map_errors(app)


def _integration(integration: Integration) -> IntegrationOut:
    return IntegrationOut.model_validate(integration.to_api())


def _attachment(attachment: Attachment) -> AttachmentOut:
    return AttachmentOut.model_validate(attachment.to_api())


# ---------------------------------------------------------------------- integrations
@app.post(
    "/accounts/<account>/integrations",
    summary="Create an integration (a customer role runcreds may assume)",
    responses=http.responses(201, IntegrationOut, "the integration, with its id", 415, 503),
)
def create_integration(account: Account, body: Annotated[IntegrationCreate, Body()]) -> Response[IntegrationOut]:
    created = integration_service().create_integration(account, body)
    return Response(status_code=201, content_type=APPLICATION_JSON, body=_integration(created))


@app.get(
    "/accounts/<account>/integrations",
    summary="List the account's integrations",
    responses=http.responses(200, IntegrationList, "the integrations", 503),
)
def list_integrations(
    account: Account,
    label: Annotated[
        str | None, QueryParam(min_length=1, max_length=64, description="only those with this label")
    ] = None,
) -> IntegrationList:
    integrations = integration_service().list_integrations(account, label)
    return IntegrationList(integrations=[_integration(i) for i in integrations])


@app.get(
    "/accounts/<account>/integrations/<integration_id>",
    summary="Show an integration",
    responses=http.responses(200, IntegrationOut, "the integration", 404, 503),
)
def get_integration(account: Account, integration_id: IntegrationIdPath) -> IntegrationOut:
    return _integration(integration_service().integrations.get(account, integration_id))


@app.patch(
    "/accounts/<account>/integrations/<integration_id>",
    summary="Change an integration (every attachment follows; attached stacks are verified first)",
    responses=http.responses(200, IntegrationOut, "the changed integration", 409, 415, 422, 503),
)
def update_integration(
    account: Account, integration_id: IntegrationIdPath, body: Annotated[IntegrationUpdate, Body()]
) -> IntegrationOut:
    return _integration(integration_service().update_integration(account, integration_id, body))


@app.delete(
    "/accounts/<account>/integrations/<integration_id>",
    summary="Delete an integration that is attached to no stack",
    responses=http.responses(204, None, "deleted", 404, 409, 503),
)
def delete_integration(account: Account, integration_id: IntegrationIdPath) -> Response[str]:
    integration_service().delete_integration(account, integration_id)
    return Response(status_code=204, body="")


@app.get(
    "/accounts/<account>/integrations/<integration_id>/trust-policy",
    summary="The trust policy the integration's role needs",
    responses=http.responses(200, TrustPolicyDocument, "an IAM trust policy document", 404, 503),
)
def get_trust_policy(
    account: Account,
    integration_id: IntegrationIdPath,
    stack: Annotated[str | None, QueryParam(pattern=SLUG_PATTERN, description="narrow to one stack")] = None,
    phase: Annotated[PhaseName | None, QueryParam(description="narrow to a stack's read or write phases")] = None,
    worker_role_arn: Annotated[
        str | None,
        QueryParam(pattern=ROLE_ARN_PATTERN, max_length=2048, description="worker-mode integrations: the principal"),
    ] = None,
) -> TrustPolicyDocument:
    document = integration_service().trust_policy(account, integration_id, stack, phase, worker_role_arn)
    return TrustPolicyDocument.model_validate(document)


# ---------------------------------------------------------------------- attachments
@app.put(
    "/accounts/<account>/stacks/<stack>/integrations/<integration_id>",
    summary="Attach an integration to a stack (verified: the broker assumes the role as a vend would)",
    responses=http.responses(200, AttachmentOut, "the attachment", 409, 415, 422, 503),
)
def attach_integration(
    account: Account, stack: Stack, integration_id: IntegrationIdPath, body: Annotated[AttachRequest, Body()]
) -> AttachmentOut:
    return _attachment(attach_service().attach(account, stack, integration_id, body))


@app.get(
    "/accounts/<account>/stacks/<stack>/integrations",
    summary="The stack's attachments, with their verification status",
    responses=http.responses(200, AttachmentList, "the attachments", 503),
)
def list_attachments(account: Account, stack: Stack) -> AttachmentList:
    return AttachmentList(attachments=[_attachment(a) for a in attach_service().list_attachments(account, stack)])


@app.delete(
    "/accounts/<account>/stacks/<stack>/integrations/<integration_id>",
    summary="Detach an integration from a stack",
    responses=http.responses(204, None, "detached", 404, 503),
)
def detach_integration(account: Account, stack: Stack, integration_id: IntegrationIdPath) -> Response[str]:
    attach_service().detach(account, stack, integration_id)
    return Response(status_code=204, body="")


# ---------------------------------------------------------------------- long runs
RunIdPath = Annotated[str, PathParam(pattern=RUN_ID_PATTERN, description="run ID")]


@app.post(
    "/accounts/<account>/stacks/<stack>/runs/<run_id>/phases/<phase>/refresh",
    summary="Fresh credentials for a run phase that outlives its session (called by `runcreds worker serve`); "
    "worker-mode OIDC integrations: a fresh token for the worker to exchange",
    responses=http.responses(200, RefreshResponse, "the fresh credentials are in the credentials record (or the "
                             "worker's token)", 404, 409, 415, 422, 503),
)  # fmt: skip
def refresh_run_phase(
    account: Account,
    stack: Stack,
    run_id: RunIdPath,
    phase: Annotated[Phase, PathParam(description="the run phase")],
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> RefreshResponse:
    run = RunPhase(account=account, stack=stack, run_id=run_id, phase=phase)
    settings = AttachSettings.from_env()
    if body and body.web_identity_token and body.integration_id:
        from runcreds.logic.worker_token import WorkerTokenService

        granted = WorkerTokenService(settings, issuer=_issuer(settings)).worker_token(run, body.integration_id)
        return RefreshResponse(credentials=[], web_identity_tokens=[granted.answer()])
    from runcreds.logic.refresh import RefreshService

    records = RefreshService(settings, issuer=_issuer(settings)).refresh(run, body.integration_id if body else None)
    return RefreshResponse(
        credentials=[
            RefreshedCredentials(integration_id=r.integration_id, expires_at=r.expires_at)
            for r in records
            if r.expires_at is not None
        ]
    )
