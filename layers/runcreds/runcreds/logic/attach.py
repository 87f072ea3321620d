"""Integrations and their attachments to stacks; attaching proves the role trusts the broker."""

from __future__ import annotations

from runcreds import aws
from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.integrations import IntegrationsStore
from runcreds.exceptions import RoleRefusedError, VerificationFailedError
from runcreds.identity import (
    TAG_ACCOUNT,
    TAG_INTEGRATION,
    TAG_PHASE,
    TAG_RUN,
    TAG_STACK,
    external_id_for,
)
from runcreds.models.api import AttachRequest, IntegrationCreate
from runcreds.models.entities import AssumeRoleSpec, Attachment, Integration, new_integration_id, utcnow
from runcreds.models.events import Access
from runcreds.observability import logger
from runcreds.settings import AttachSettings
from runcreds.sts_calls import assume_run_role

VERIFICATION_RUN = "attach-verification"


class AttachService:
    def __init__(self, settings: AttachSettings) -> None:
        self.settings = settings
        self.integrations = IntegrationsStore(settings.integrations_table)
        self.attachments = AttachmentsStore(settings.attachments_table)

    def create_integration(self, account: str, body: IntegrationCreate) -> Integration:
        integration = Integration(
            account=account, integration_id=new_integration_id(), created_at=utcnow(), **body.model_dump()
        )
        return self.integrations.create(integration)

    def attach(self, account: str, stack: str, integration_id: str, request: AttachRequest) -> Attachment:
        integration = self.integrations.get(account, integration_id)
        wanted = [access for access, on in ((Access.READ, request.read), (Access.WRITE, request.write)) if on]
        if not integration.assume_role_on_worker:
            for access in wanted:
                self.verify(integration, stack, access)
        attachment = Attachment(
            account=account,
            stack=stack,
            integration_id=integration.id,
            read=request.read,
            write=request.write,
            role_arn=integration.role_arn,
            duration_seconds=integration.duration_seconds,
            region=integration.region,
            assume_role_on_worker=integration.assume_role_on_worker,
            attached_at=utcnow(),
        )
        logger.info("integration attached", extra={"account": account, "stack": stack, "integration": integration.id})
        return self.attachments.put(attachment)

    def verification_spec(self, integration: Integration, stack: str, access: Access) -> AssumeRoleSpec:
        """The AssumeRole a vend for this stack and access would make, but for a verification session."""
        tags = {
            TAG_ACCOUNT: integration.account,
            TAG_STACK: stack,
            TAG_RUN: VERIFICATION_RUN,
            TAG_PHASE: access.value,
            TAG_INTEGRATION: integration.id,
        }
        return AssumeRoleSpec(
            role_arn=integration.role_arn,
            external_id=external_id_for(integration.account, integration.id, stack, access),
            session_name=f"runcreds-verify-{stack}"[:64],
            duration_seconds=integration.duration_seconds,
            region=integration.region,
            tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def verify(self, integration: Integration, stack: str, access: Access) -> None:
        spec = self.verification_spec(integration, stack, access)
        sts = aws.broker_sts(self.settings.broker_role_arn, self.settings.function_name, spec.region)
        try:
            assume_run_role(sts, spec)  # the credentials are dropped unread
        except RoleRefusedError as refusal:
            raise VerificationFailedError(
                f"the role {integration.role_arn} refused the runcreds broker for {access.value} access "
                f"({refusal.code}): make its trust policy allow {self.settings.broker_role_arn} to "
                f"sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity with external ID {spec.external_id}",
                {
                    "code": refusal.code,
                    "phase": access.value,
                    "external_id": spec.external_id,
                    "principal": self.settings.broker_role_arn,
                    "role_arn": integration.role_arn,
                    "sts_message": refusal.sts_message,
                },
            ) from None
