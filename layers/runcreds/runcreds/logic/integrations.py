"""Integrations (customer roles runcreds may assume): create, list, change, delete, and the trust policy
each role needs. A change of what a vend uses is verified on every attached stack before it is saved."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.integrations import IntegrationsStore
from runcreds.exceptions import ConflictError, InvalidRequestError, NotFoundError, TransientAwsError
from runcreds.logic.role_checks import BINDING_PROBES, RoleChecks, verified_by_runcreds
from runcreds.logic.trust_policy import oidc_trust_policy_for, trust_policy_for
from runcreds.logic.verification import Target
from runcreds.models.bodies import IntegrationCreate, IntegrationUpdate
from runcreds.models.entities import (
    VEND_FIELDS,
    Attachment,
    Integration,
    VerificationStatus,
    new_integration_id,
    utcnow,
)
from runcreds.models.run import Access, Phase
from runcreds.observability import logger
from runcreds.settings import AttachSettings

_DELETE_BLOCKERS_SHOWN = 5


class IntegrationService:
    def __init__(self, settings: AttachSettings, time_left: float | None = None, issuer: str | None = None) -> None:
        """`time_left`, `issuer`: as RoleChecks'."""
        self.settings = settings
        self.integrations = IntegrationsStore(settings.integrations_table)
        self.attachments = AttachmentsStore(settings.attachments_table)
        self.checks = RoleChecks(settings, time_left, issuer)

    def create_integration(self, account: str, body: IntegrationCreate) -> Integration:
        self.checks.check_role_account(body.role_arn)
        integration = Integration(
            account=account, integration_id=new_integration_id(), created_at=utcnow(), **body.model_dump()
        )
        return self.integrations.create(integration)

    def list_integrations(self, account: str, label: str | None = None) -> list[Integration]:
        return [i for i in self.integrations.list(account) if label is None or label in i.labels]

    def update_integration(self, account: str, integration_id: str, update: IntegrationUpdate) -> Integration:
        """PATCH. Attachments carry a copy of the vend fields, so every copy is rewritten; when the vend
        fields of an integration runcreds verifies (`verified_by_runcreds`) change, every attached stack is
        verified first with the new values and nothing is saved if one refuses (422 with the diagnosis)."""
        if update.role_arn is not None:
            self.checks.check_role_account(update.role_arn)
        current = self.integrations.get(account, integration_id)
        values = current.model_dump(by_alias=True)
        values.update(update.changes(), updated_at=utcnow())
        updated = Integration.model_validate(values)
        vend_changed = updated.vend_fields() != current.vend_fields()
        attachments = self._attachments_of(current) if vend_changed else []
        checked_at = utcnow()
        if vend_changed and verified_by_runcreds(updated) and attachments:
            probed = _trust_changed(current, updated)
            self.checks.charge(account, sum(len(a.accesses) for a in attachments) + (BINDING_PROBES if probed else 0))
            verifier = self.checks.verifier_for(updated)
            for attachment in attachments:
                for access in attachment.accesses:
                    target = Target.of(updated, attachment.stack)
                    diagnosis = verifier.verify(target, access, self.checks.deadline)
                    if diagnosis is not None:
                        self.checks.refused(
                            target,
                            diagnosis,
                            f"Not saved: with these changes, stack {attachment.stack} could not get credentials. ",
                        )
            if probed:
                first = attachments[0]
                target = Target.of(updated, first.stack)
                binding = verifier.binds_to_tenant(target, first.accesses[0])
                if binding is not None:
                    self.checks.refused(target, binding, "Not saved. ")
        if time.monotonic() > self.checks.answer_by:
            # API Gateway has answered 504 by now: saving would change what the caller was told failed.
            raise TransientAwsError("verifying every attached stack took too long; nothing was saved, retry")
        self.integrations.replace(updated, current)
        for attachment in attachments:
            self.attachments.update_fields(
                account,
                attachment.stack,
                integration_id,
                _copy_of(updated, checked_at if verified_by_runcreds(updated) else None),
            )
        logger.info(
            "integration updated",
            extra={"account": account, "integration": integration_id, "fields": sorted(update.changes())},
        )
        return updated

    def delete_integration(self, account: str, integration_id: str) -> None:
        """409 while attached. The integration's own record of its stacks decides (the delete is conditional
        on it); the by-integration GSI is asked first only for attachments made before that record existed,
        long since indexed."""
        stacks = self.attachments.stacks_of(account, integration_id, limit=_DELETE_BLOCKERS_SHOWN)
        if not stacks:
            stacks = sorted(self.integrations.delete(account, integration_id))[:_DELETE_BLOCKERS_SHOWN]
        if stacks:
            raise ConflictError(
                f"integration {integration_id} is attached to stacks {', '.join(stacks)}: detach it from every "
                f"stack first (DELETE /accounts/{account}/stacks/<stack>/integrations/{integration_id})"
            )

    def _attachments_of(self, integration: Integration) -> list[Attachment]:
        """Every attachment: the stacks the integration records (exact, read with it) and, for attachments
        made before it recorded them, the GSI's."""
        found = []
        stacks = integration.attached_stacks | set(self.attachments.stacks_of(integration.account, integration.id))
        for stack in sorted(stacks):
            try:
                found.append(self.attachments.get(integration.account, stack, integration.id))
            except NotFoundError:
                continue  # detached since the index was written
        return found

    def trust_policy(
        self,
        account: str,
        integration_id: str,
        stack: str | None,
        phase: str | None,
        worker_role_arn: str | None,
    ) -> dict[str, object]:
        integration = self.integrations.get(account, integration_id)
        access = None
        if phase is not None:
            if stack is None:
                raise InvalidRequestError("phase narrows a stack-scoped policy: give stack as well")
            access = Access(phase) if phase in Access.__members__.values() else Phase(phase).access
        if integration.trust == "oidc":
            if worker_role_arn:
                raise InvalidRequestError(
                    "worker_role_arn applies to assume_role_on_worker integrations only: this one trusts "
                    "runcreds' OIDC issuer"
                )
            return oidc_trust_policy_for(self.checks.issuer_url(), integration.role_arn, account, stack, access)
        if integration.assume_role_on_worker:
            if not worker_role_arn:
                raise InvalidRequestError(
                    "this integration assumes the role on the worker: give the worker's role ARN as "
                    "worker_role_arn, the principal the trust policy must name"
                )
            principal = worker_role_arn
        else:
            if worker_role_arn:
                raise InvalidRequestError(
                    "worker_role_arn applies to assume_role_on_worker integrations only: this one is assumed "
                    "by the runcreds broker"
                )
            principal = self.settings.broker_role_arn
        return trust_policy_for(principal, account, stack, access)


def _trust_changed(before: Integration, after: Integration) -> bool:
    """Whether a PATCH changes which trust policy lets runcreds in: another role, broker mode anew, or
    another trust (broker role or OIDC)."""
    return (
        before.role_arn != after.role_arn
        or before.assume_role_on_worker != after.assume_role_on_worker
        or before.trust != after.trust
    )


def _copy_of(integration: Integration, verified_at: datetime | None) -> dict[str, Any]:
    """An attachment's copy of its integration's vend fields, with the verification they come with:
    ok at `verified_at`, or unchecked (None)."""
    return {
        **integration.model_dump(mode="json", include=set(VEND_FIELDS)),
        "status": (VerificationStatus.OK if verified_at else VerificationStatus.UNCHECKED).value,
        "status_code": None,
        "status_reason": None,
        "checked_at": verified_at.isoformat() if verified_at else None,
    }
