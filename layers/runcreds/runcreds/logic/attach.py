"""Attaching an integration to a stack, which proves the role trusts runcreds first; detaching it."""

from __future__ import annotations

from collections.abc import Iterator

from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.integrations import IntegrationsStore
from runcreds.exceptions import ConflictError
from runcreds.logic.role_checks import BINDING_PROBES, RoleChecks, verified_by_runcreds
from runcreds.logic.verification import Target
from runcreds.models.bodies import AttachRequest
from runcreds.models.entities import Attachment, Integration, VerificationStatus, utcnow
from runcreds.models.run import Access
from runcreds.observability import logger
from runcreds.settings import AttachSettings


class AttachService:
    def __init__(self, settings: AttachSettings, time_left: float | None = None, issuer: str | None = None) -> None:
        """`time_left`, `issuer`: as RoleChecks'."""
        self.integrations = IntegrationsStore(settings.integrations_table)
        self.attachments = AttachmentsStore(settings.attachments_table)
        self.checks = RoleChecks(settings, time_left, issuer)

    def attach(self, account: str, stack: str, integration_id: str, request: AttachRequest) -> Attachment:
        integration = self.integrations.get(account, integration_id)
        self.checks.check_role_account(integration.role_arn)  # an integration saved before create checked it
        wanted = [access for access, on in ((Access.READ, request.read), (Access.WRITE, request.write)) if on]
        status, checked_at = VerificationStatus.UNCHECKED, None
        if verified_by_runcreds(integration):
            target = Target.of(integration, stack)
            verifier = self.checks.verifier_for(integration)
            self.checks.charge(account, len(wanted) + BINDING_PROBES)
            for access in wanted:
                diagnosis = verifier.verify(target, access, self.checks.deadline, self._other_stacks(integration))
                if diagnosis is not None:
                    self.checks.refused(target, diagnosis)
            binding = verifier.binds_to_tenant(target, wanted[0])  # once per attach, not per access
            if binding is not None:
                self.checks.refused(target, binding)
            status, checked_at = VerificationStatus.OK, utcnow()
        attachment = Attachment(
            account=account,
            stack=stack,
            integration_id=integration.id,
            read=request.read,
            write=request.write,
            attached_at=utcnow(),
            status=status,
            checked_at=checked_at,
            **integration.vend_fields(),
        )
        try:
            self.attachments.put(attachment, self.integrations.record_attached(integration, stack))
        except ConflictError:
            self.integrations.get(account, integration_id)  # deleted meanwhile: 404
            raise
        logger.info("integration attached", extra={"account": account, "stack": stack, "integration": integration.id})
        return attachment

    def _other_stacks(self, integration: Integration) -> Iterator[str]:
        """Stacks to probe external IDs with, read only if a diagnosis needs them (lazy)."""
        yield from self.attachments.stacks_of(integration.account, integration.id, limit=4)

    def detach(self, account: str, stack: str, integration_id: str) -> None:
        self.attachments.delete(
            account, stack, integration_id, self.integrations.record_detached(account, integration_id, stack)
        )

    def list_attachments(self, account: str, stack: str) -> list[Attachment]:
        return self.attachments.list_for_stack(account, stack)
