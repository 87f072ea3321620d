"""Verification: runcreds tries the customer role as a vend would; a refusal is diagnosed.

The happy path is one call per attached access, then the binding check: the role must refuse another
tenant (rules.ROLE_BINDING, rules.OIDC_BINDING). Only after a refusal does the diagnosis probe, as the
first rule of the trust's table that holds asks (rules.py), so that the answer names what to change
instead of repeating AccessDenied. The answer is the 422's model, DiagnosisBody (docs/openapi.json).

Verifier verifies broker-role integrations (AssumeRole as the broker); oidc_service.OidcVerifier, OIDC
integrations (runcreds' token exchanged for the role's session).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from runcreds.exceptions import RoleRefusedError
from runcreds.logic.trust_policy import trust_policy_for
from runcreds.logic.verification import messages, rules
from runcreds.logic.verification.model import ReadOnce, Target
from runcreds.logic.verification.probes import AS_VERIFIED, BrokerSts, Evidence, Sts, Variant
from runcreds.models.bodies import DiagnosisBody
from runcreds.models.run import Access


class Verification(ABC):
    """What both trusts share: verify with retries while IAM propagates, the binding check, diagnosis."""

    trust_rules: ClassVar[tuple[rules.Rule, ...]]
    binding_rules: ClassVar[tuple[rules.Rule, ...]]
    prose: ClassVar[Mapping[rules.Code, messages.Message]]  # messages.py: code → message
    # Called before every call to STS (the attach API's per-account budget); raises to stop.
    before_call: Callable[[], None] | None

    @abstractmethod
    def warm(self, region: str | None) -> None:
        """Build (and cache) the clients for `region` now, before threads share them."""

    @abstractmethod
    def _request(self, target: Target, access: Access, variant: Variant) -> RoleRefusedError | None:
        """The call itself: None when STS granted it (the credentials are dropped unread)."""

    @abstractmethod
    def _name(self, target: Target, access: Access, variant: Variant) -> str:
        """What binds the request to a tenant: its external ID, or its token's sub."""

    @abstractmethod
    def _identity(self, target: Target, access: Access) -> dict[str, Any]:
        """The body's fields that name whom the trust must let in, and how."""

    @property
    def issuer(self) -> str:
        return ""

    def attempt(self, target: Target, access: Access, variant: Variant = AS_VERIFIED) -> RoleRefusedError | None:
        """None when STS let runcreds in; its refusal otherwise. TransientAwsError (throttling, 5xx)
        propagates: that is no answer about the role."""
        if self.before_call is not None:
            self.before_call()
        return self._request(target, access, variant)

    def verify(
        self, target: Target, access: Access, deadline: float | None = None, other_stacks: Iterable[str] = ()
    ) -> DiagnosisBody | None:
        """None when the role lets runcreds in for this access. With a deadline (time.monotonic()), a
        refusal IAM propagation may explain (rules.PROPAGATION_POSSIBLE) is retried with backoff until
        then: a role created or changed moments ago is refused by STS until IAM has propagated it;
        another refusal meanwhile is diagnosed."""
        stacks = ReadOnce(other_stacks)  # each diagnosis probes the same stacks; read them at most once
        refusal = self.attempt(target, access)
        if refusal is None:
            return None
        diagnosis = self.diagnose(target, access, refusal, stacks)
        if deadline is None or diagnosis.code not in rules.PROPAGATION_POSSIBLE:
            return diagnosis
        pause, retried = 0.25, False
        while time.monotonic() + pause < deadline:
            time.sleep(pause)
            pause, retried = min(pause * 2, 2.0), True
            latest = self.attempt(target, access)
            if latest is None:
                return None
            if latest.code != refusal.code:
                return self.diagnose(target, access, latest, stacks)
        # Diagnose again: a role that became visible meanwhile may now show a narrower cause.
        return self.diagnose(target, access, refusal, stacks) if retried else diagnosis

    def binds_to_tenant(self, target: Target, access: Access) -> DiagnosisBody | None:
        """After `verify` passed: None when the role refuses another tenant (the binding rules' probes,
        as the reserved account PROBE_ACCOUNT, a name no tenant can take); a granted probe's credentials
        are dropped unread."""
        evidence = self._evidence(target, access, None)
        rule = rules.first_that_holds(self.binding_rules, evidence)
        return None if rule is None else self._diagnosis(rule, evidence)

    def diagnose(
        self, target: Target, access: Access, refusal: RoleRefusedError, other_stacks: Iterable[str] = ()
    ) -> DiagnosisBody:
        evidence = self._evidence(target, access, refusal, other_stacks)
        rule = rules.first_that_holds(self.trust_rules, evidence)
        assert rule is not None, "every trust table ends with a rule that always holds"
        return self._diagnosis(rule, evidence)

    def _evidence(
        self, target: Target, access: Access, refusal: RoleRefusedError | None, other_stacks: Iterable[str] = ()
    ) -> Evidence:
        return Evidence(
            target,
            access,
            refusal,
            lambda variant: self.attempt(target, access, variant),
            lambda variant: self._name(target, access, variant),
            other_stacks,
        )

    def _diagnosis(self, rule: rules.Rule, evidence: Evidence) -> DiagnosisBody:
        """The 422's body. No secret: STS refused (or its credentials were dropped unread)."""
        target, access, refusal = evidence.target, evidence.access, evidence.refusal
        identity = self._identity(target, access)
        case = messages.Case(evidence, rule, identity["principal"], self.issuer)
        return DiagnosisBody.model_validate(
            {
                "message": self.prose[rule.code](case),
                "code": rule.code.value,
                "phase": access.value,
                "stack": target.stack,
                "role_arn": target.role_arn,
                "sts_code": refusal.code if refusal else None,
                "sts_message": refusal.sts_message if refusal else None,
                "suggested_integration_patch": dict(rule.patch) if rule.patch is not None else None,
                "missing_actions": list(rule.missing_actions) if rule.missing_actions is not None else None,
                **identity,
            }
        )


@dataclass
class Verifier(Verification):
    """Broker-role integrations: the broker assumes the role as a vend would (the external ID binds it)."""

    broker_role_arn: str
    session_name: str
    before_call: Callable[[], None] | None = None
    # The STS the probes go through (tests inject a double); the broker role's by default.
    sts: Sts | None = None

    trust_rules = rules.ROLE_TRUST
    binding_rules = rules.ROLE_BINDING
    prose = messages.ROLE_MESSAGES

    def __post_init__(self) -> None:
        if self.sts is None:
            self.sts = BrokerSts(self.broker_role_arn, self.session_name)

    def warm(self, region: str | None) -> None:
        assert self.sts is not None
        self.sts.warm(region)

    def _as(self, target: Target, variant: Variant) -> Target:
        return replace(target, account=variant.account) if variant.account else target

    def _request(self, target: Target, access: Access, variant: Variant) -> RoleRefusedError | None:
        assert self.sts is not None
        spec = self._as(target, variant).spec(variant.access or access, variant.stack, variant.duration_seconds)
        return self.sts.assume_role(
            spec, tags=variant.tags, source_identity=variant.source_identity, external_id=variant.external_id
        )

    def _name(self, target: Target, access: Access, variant: Variant) -> str:
        return self._as(target, variant).external_id(variant.access or access, variant.stack)

    def _identity(self, target: Target, access: Access) -> dict[str, Any]:
        return {
            "external_id": target.external_id(access),
            "principal": self.broker_role_arn,
            "suggested_trust_policy": trust_policy_for(self.broker_role_arn, target.account, target.stack),
        }
