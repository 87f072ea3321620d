"""Integrations and their attachments to stacks; attaching proves the role trusts the broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from runcreds.dal.assume_role_budget import AssumeRoleBudgetStore
from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.integrations import IntegrationsStore
from runcreds.exceptions import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    TransientAwsError,
    VerificationFailedError,
)
from runcreds.logic.trust_policy import oidc_trust_policy_for, trust_policy_for
from runcreds.logic.verification import OidcVerifier, Target, Verifier
from runcreds.models.bodies import AttachRequest, DiagnosisBody, IntegrationCreate, IntegrationUpdate
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
API_GATEWAY_SECONDS = 29.0
BINDING_PROBES = 2  # Verifier.binds_to_tenant
_MORE_ASSUME_ROLES = 8  # taken from the budget at a time once a refusal is being diagnosed or retried


@dataclass
class _Allowance:
    """The AssumeRoles one request may make, taken from its account's budget in batches: a happy attach
    costs one UpdateItem, a diagnosis or propagation retry one more per batch."""

    budget: AssumeRoleBudgetStore
    account: str
    left: int = 0

    def reserve(self, calls: int) -> None:
        self.budget.take(self.account, calls)
        self.left += min(calls, self.budget.burst)

    def spend(self) -> None:
        if self.left <= 0:
            self.reserve(_MORE_ASSUME_ROLES)
        self.left -= 1


class AttachService:
    def __init__(self, settings: AttachSettings, time_left: float | None = None, issuer: str | None = None) -> None:
        """`time_left`: seconds the caller (API Gateway, Lambda) still allows; retries stop well before.
        `issuer`: the OIDC issuer URL (the API's own, derived from the request when not configured)."""
        self.settings = settings
        self.integrations = IntegrationsStore(settings.integrations_table)
        self.attachments = AttachmentsStore(settings.attachments_table)
        self.verifier = Verifier(settings.broker_role_arn, settings.function_name)
        self.issuer = issuer or settings.oidc_issuer_url
        self.oidc_verifier = OidcVerifier(settings.oidc_signing_key_arn, self.issuer)
        self.budget = AssumeRoleBudgetStore(
            settings.assume_role_budget_table, settings.assume_role_burst, settings.assume_roles_per_minute
        )
        budget = settings.verify_retry_seconds
        if time_left is not None:
            budget = min(budget, max(0.0, time_left - 5.0))
        self.deadline = time.monotonic() + budget
        # After this, API Gateway (29 s per request) has given up on us: change nothing any more.
        self.answer_by = time.monotonic() + min(API_GATEWAY_SECONDS, time_left or API_GATEWAY_SECONDS) - 2.0

    # ------------------------------------------------------------------ integrations
    def create_integration(self, account: str, body: IntegrationCreate) -> Integration:
        self._check_role_account(body.role_arn)
        integration = Integration(
            account=account, integration_id=new_integration_id(), created_at=utcnow(), **body.model_dump()
        )
        return self.integrations.create(integration)

    def _check_role_account(self, role_arn: str) -> None:
        """400 for a role the broker must never assume (issue 8): BrokerRole's policy denies these too."""
        role_account = role_arn.split(":")[4]
        if role_account == self.settings.own_account_id:
            raise InvalidRequestError(
                f"role_arn {role_arn} is in runcreds' own AWS account {role_account}: the broker never assumes "
                "roles of its own account. Create the role in your AWS account and give its ARN."
            )
        allowed = self.settings.allowed_customer_accounts
        if allowed and not self.settings.allowed_customer_organization_id and role_account not in allowed:
            raise InvalidRequestError(
                f"role_arn {role_arn} is in AWS account {role_account}, which this runcreds deployment does not "
                f"serve (AllowedCustomerAccountIds): use a role in one of {', '.join(sorted(allowed))}, or ask "
                "its operators to allow the account."
            )

    def list_integrations(self, account: str, label: str | None = None) -> list[Integration]:
        return [i for i in self.integrations.list(account) if label is None or label in i.labels]

    def update_integration(self, account: str, integration_id: str, update: IntegrationUpdate) -> Integration:
        """PATCH. Attachments carry a copy of the vend fields, so every copy is rewritten; when the vend
        fields of an integration runcreds verifies (`verified_by_runcreds`) change, every attached stack is
        verified first with the new values and nothing is saved if one refuses (422 with the diagnosis)."""
        if update.role_arn is not None:
            self._check_role_account(update.role_arn)
        current = self.integrations.get(account, integration_id)
        values = current.model_dump(by_alias=True)
        values.update(update.changes(), updated_at=utcnow())
        updated = Integration.model_validate(values)
        vend_changed = updated.vend_fields() != current.vend_fields()
        attachments = self._attachments_of(current) if vend_changed else []
        checked_at = utcnow()
        if vend_changed and verified_by_runcreds(updated) and attachments:
            probed = _trust_changed(current, updated)
            self._charge(account, sum(len(a.accesses) for a in attachments) + (BINDING_PROBES if probed else 0))
            verifier = self._verifier(updated)
            for attachment in attachments:
                for access in attachment.accesses:
                    target = Target.of(updated, attachment.stack)
                    diagnosis = verifier.verify(target, access, self.deadline)
                    if diagnosis is not None:
                        self._refused(
                            target,
                            diagnosis,
                            f"Not saved: with these changes, stack {attachment.stack} could not get credentials. ",
                        )
            if probed:
                first = attachments[0]
                target = Target.of(updated, first.stack)
                binding = verifier.binds_to_tenant(target, first.accesses[0])
                if binding is not None:
                    self._refused(target, binding, "Not saved. ")
        if time.monotonic() > self.answer_by:
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

    # ------------------------------------------------------------------ trust policy
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
            return oidc_trust_policy_for(self._issuer(), integration.role_arn, account, stack, access)
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

    # ------------------------------------------------------------------ attachments
    def attach(self, account: str, stack: str, integration_id: str, request: AttachRequest) -> Attachment:
        integration = self.integrations.get(account, integration_id)
        self._check_role_account(integration.role_arn)  # an integration saved before create checked it
        wanted = [access for access, on in ((Access.READ, request.read), (Access.WRITE, request.write)) if on]
        status, checked_at = VerificationStatus.UNCHECKED, None
        if verified_by_runcreds(integration):
            target = Target.of(integration, stack)
            verifier = self._verifier(integration)
            self._charge(account, len(wanted) + BINDING_PROBES)
            for access in wanted:
                diagnosis = verifier.verify(target, access, self.deadline, self._other_stacks(integration))
                if diagnosis is not None:
                    self._refused(target, diagnosis)
            binding = verifier.binds_to_tenant(target, wanted[0])  # once per attach, not per access
            if binding is not None:
                self._refused(target, binding)
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

    def _charge(self, account: str, happy_path: int) -> None:
        """Every AssumeRole from here on counts against the account's budget; the happy path's are
        reserved at once (429 before any STS call when they are not there)."""
        allowance = _Allowance(self.budget, account)
        allowance.reserve(happy_path)
        self.verifier.before_call = self.oidc_verifier.before_call = allowance.spend

    def _verifier(self, integration: Integration) -> Verifier | OidcVerifier:
        """Broker-role integrations are verified by AssumeRole as the broker, OIDC ones by token exchange."""
        if integration.trust == "oidc":
            self._issuer()
            return self.oidc_verifier
        return self.verifier

    def _issuer(self) -> str:
        if not self.issuer:
            raise InvalidRequestError("this runcreds deployment has no OIDC issuer URL (OidcIssuerUrl)")
        return self.issuer

    def _other_stacks(self, integration: Integration) -> Iterator[str]:
        """Stacks to probe external IDs with, read only if a diagnosis needs them (lazy)."""
        yield from self.attachments.stacks_of(integration.account, integration.id, limit=4)

    def _refused(self, target: Target, diagnosis: DiagnosisBody, prefix: str = "") -> NoReturn:
        logger.info(
            "attach verification refused",
            extra={
                "account": target.account,
                "stack": target.stack,
                "integration": target.integration_id,
                "code": diagnosis.code,
                "sts_code": diagnosis.sts_code,
            },
        )
        raise VerificationFailedError(prefix + diagnosis.message, diagnosis.fields())

    def detach(self, account: str, stack: str, integration_id: str) -> None:
        self.attachments.delete(
            account, stack, integration_id, self.integrations.record_detached(account, integration_id, stack)
        )

    def list_attachments(self, account: str, stack: str) -> list[Attachment]:
        return self.attachments.list_for_stack(account, stack)


def _trust_changed(before: Integration, after: Integration) -> bool:
    """Whether a PATCH changes which trust policy lets runcreds in: another role, broker mode anew, or
    another trust (broker role or OIDC)."""
    return (
        before.role_arn != after.role_arn
        or before.assume_role_on_worker != after.assume_role_on_worker
        or before.trust != after.trust
    )


def verified_by_runcreds(integration: Integration | Attachment) -> bool:
    """Whether runcreds can verify the role's trust: it can whenever runcreds' own identity is what the role
    trusts (the broker role, or its OIDC token, also in worker mode: the worker exchanges runcreds' token);
    a worker-mode broker_role integration trusts the worker's identity, which runcreds does not have."""
    return integration.trust == "oidc" or not integration.assume_role_on_worker


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
