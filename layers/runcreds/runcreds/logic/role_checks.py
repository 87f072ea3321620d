"""What every request that verifies a role shares: the verifiers (AssumeRole as the broker, or an OIDC token
exchange), the time it may take, and the AssumeRoles it may make from its account's budget."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NoReturn

from runcreds.dal.assume_role_budget import AssumeRoleBudgetStore
from runcreds.exceptions import InvalidRequestError, VerificationFailedError
from runcreds.logic.verification import OidcVerifier, Target, Verifier
from runcreds.models.bodies import DiagnosisBody
from runcreds.models.entities import Attachment, Integration
from runcreds.observability import logger
from runcreds.settings import AttachSettings

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


class RoleChecks:
    def __init__(self, settings: AttachSettings, time_left: float | None = None, issuer: str | None = None) -> None:
        """`time_left`: seconds the caller (API Gateway, Lambda) still allows; retries stop well before.
        `issuer`: the OIDC issuer URL (the API's own, derived from the request when not configured)."""
        self.settings = settings
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

    def check_role_account(self, role_arn: str) -> None:
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

    def charge(self, account: str, happy_path: int) -> None:
        """Every AssumeRole from here on counts against the account's budget; the happy path's are
        reserved at once (429 before any STS call when they are not there)."""
        allowance = _Allowance(self.budget, account)
        allowance.reserve(happy_path)
        self.verifier.before_call = self.oidc_verifier.before_call = allowance.spend

    def verifier_for(self, integration: Integration) -> Verifier | OidcVerifier:
        """Broker-role integrations are verified by AssumeRole as the broker, OIDC ones by token exchange."""
        if integration.trust == "oidc":
            self.issuer_url()
            return self.oidc_verifier
        return self.verifier

    def issuer_url(self) -> str:
        if not self.issuer:
            raise InvalidRequestError("this runcreds deployment has no OIDC issuer URL (OidcIssuerUrl)")
        return self.issuer

    def refused(self, target: Target, diagnosis: DiagnosisBody, prefix: str = "") -> NoReturn:
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


def verified_by_runcreds(integration: Integration | Attachment) -> bool:
    """Whether runcreds can verify the role's trust: it can whenever runcreds' own identity is what the role
    trusts (the broker role, or its OIDC token, also in worker mode: the worker exchanges runcreds' token);
    a worker-mode broker_role integration trusts the worker's identity, which runcreds does not have."""
    return integration.trust == "oidc" or not integration.assume_role_on_worker
