"""Verification: the broker assumes the customer role as a vend would; a refusal is diagnosed.

The happy path is one AssumeRole per attached access, then the binding check: two AssumeRoles that
must be refused, as another tenant (PROBE_ACCOUNT's external ID) and with no external ID at all. Only
after a refusal does the diagnosis probe (always as the broker): the same call without session tags or
source identity, then other external IDs this integration uses, so that the answer names what to change
instead of repeating AccessDenied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from runcreds.exceptions import RoleRefusedError
from runcreds.logic.trust_policy import external_id_pattern
from runcreds.logic.verification.model import (
    CHAINING_CAP_SECONDS,
    DURATION_EXCEEDS_CHAINING_CAP,
    DURATION_EXCEEDS_MAX_SESSION,
    EXTERNAL_ID_MISMATCH,
    EXTERNAL_ID_NOT_ENFORCED,
    MISSING_SESSION_ACTIONS,
    MISSING_SET_SOURCE_IDENTITY,
    MISSING_TAG_SESSION,
    PROPAGATION_HINT,
    ROLE_MISSING_OR_UNTRUSTED,
    STS_REFUSED,
    STS_REGION_DISABLED,
    Diagnosis,
    Target,
    _ReadOnce,
    verify_with_retries,
)
from runcreds.logic.verification.probes import BrokerSts, Sts
from runcreds.models.run import Access
from runcreds.run_scope import (
    PROBE_ACCOUNT,
    AssumeRoleSpec,
)

_MAX_OTHER_STACK_PROBES = 3


@dataclass
class Verifier:
    broker_role_arn: str
    session_name: str
    # Called before every AssumeRole (the attach API's per-account budget); raises to stop.
    before_call: Callable[[], None] | None = None

    # The STS the probes go through (tests inject a double); the broker role's by default.
    sts: Sts | None = None

    def __post_init__(self) -> None:
        if self.sts is None:
            self.sts = BrokerSts(self.broker_role_arn, self.session_name)

    def warm(self, region: str | None) -> None:
        """Build (and cache) the STS client for `region` now, before threads share it."""
        assert self.sts is not None
        self.sts.warm(region)

    def attempt(
        self, spec: AssumeRoleSpec, *, tags: bool = True, source_identity: bool = True, external_id: bool = True
    ) -> RoleRefusedError | None:
        """None when STS let the broker in (the credentials are dropped unread); its refusal otherwise.
        TransientAwsError (throttling, 5xx) propagates: that is no answer about the role."""
        if self.before_call is not None:
            self.before_call()
        assert self.sts is not None
        return self.sts.assume_role(spec, tags=tags, source_identity=source_identity, external_id=external_id)

    def binds_to_tenant(self, target: Target, access: Access) -> Diagnosis | None:
        """After `verify` passed: None when the role demands the tenant's external ID. It is probed as
        another tenant would: with the external ID this integration, stack and access carry under
        PROBE_ACCOUNT (a name no tenant can take, so `*@*@*@*` is caught too), then with none. Two
        AssumeRoles, or one when the first is granted; a granted probe's credentials are dropped unread."""
        foreign = replace(target, account=PROBE_ACCOUNT).spec(access)
        if self.attempt(foreign) is None:
            return self._not_enforced(target, access, f"the external ID {foreign.external_id}")
        if self.attempt(target.spec(access), external_id=False) is None:
            return self._not_enforced(target, access, "no external ID at all")
        return None

    def _not_enforced(self, target: Target, access: Access, granted_with: str) -> Diagnosis:
        return Diagnosis(
            code=EXTERNAL_ID_NOT_ENFORCED,
            message=(
                f"The role {target.role_arn} does not demand this tenant's external ID: STS let the broker assume "
                f"it with {granted_with}, which is not {target.external_id(access)}: any tenant of runcreds could "
                "attach such a role and receive its sessions. Make its trust statement for "
                f'{self.broker_role_arn} require sts:ExternalId StringLike "'
                f'{external_id_pattern(target.account, target.stack)}" (suggested_trust_policy), and remove any '
                "statement that lets the broker, or runcreds' whole account, in without that condition."
            ),
            target=target,
            access=access,
            principal=self.broker_role_arn,
            sts_code=None,
            sts_message=None,
        )

    def verify(
        self,
        target: Target,
        access: Access,
        deadline: float | None = None,
        other_stacks: Iterable[str] = (),
    ) -> Diagnosis | None:
        """None when the role accepts the broker for this access. With a deadline (time.monotonic()), a
        refusal that looks like an unknown or untrusted role is retried with backoff until then: a role
        created or changed moments ago is refused by STS until IAM has propagated it."""
        spec = target.spec(access)
        stacks = _ReadOnce(other_stacks)  # each diagnosis probes the same stacks; read them at most once
        return verify_with_retries(
            lambda: self.attempt(spec), lambda refusal: self.diagnose(target, access, refusal, stacks), deadline
        )

    # ------------------------------------------------------------------ diagnosis
    def diagnose(
        self, target: Target, access: Access, refusal: RoleRefusedError, other_stacks: Iterable[str] = ()
    ) -> Diagnosis:
        if refusal.code == "AccessDenied":
            return self._access_denied(target, access, refusal, other_stacks)
        if refusal.code == "RegionDisabledException":
            return self._diagnosis(
                target,
                access,
                refusal,
                STS_REGION_DISABLED,
                f"STS is not activated in region {target.region}, the integration's region, so the broker cannot "
                "assume the role there. Activate the region's STS endpoint (IAM console, Account settings, "
                "Security Token Service), or PATCH the integration's region to a region where STS is active "
                "(null: the broker's own region).",
                patch={"region": None},
            )
        if refusal.code == "ValidationError" and target.duration_seconds > CHAINING_CAP_SECONDS:
            shorter = target.spec(access, duration_seconds=CHAINING_CAP_SECONDS)
            if self.attempt(shorter) is None:
                return self._duration(target, access, refusal)
        return self._diagnosis(
            target,
            access,
            refusal,
            STS_REFUSED,
            f"STS refused the broker for {access.value} access with {refusal.code}: {refusal.sts_message}",
        )

    def _access_denied(
        self, target: Target, access: Access, refusal: RoleRefusedError, other_stacks: Iterable[str]
    ) -> Diagnosis:
        spec = target.spec(access)
        if self.attempt(spec, tags=False, source_identity=False) is None:
            return self._missing_actions(target, access, refusal)
        candidates = [(access.other, target.stack)] + [
            (access, stack) for stack in list(other_stacks)[:_MAX_OTHER_STACK_PROBES] if stack != target.stack
        ]
        for probe_access, probe_stack in candidates:
            probe = target.spec(probe_access, stack=probe_stack)
            if self.attempt(probe, tags=False, source_identity=False) is None:
                return self._diagnosis(
                    target,
                    access,
                    refusal,
                    EXTERNAL_ID_MISMATCH,
                    f"The role {target.role_arn} trusts the broker, but its sts:ExternalId condition does not "
                    f"match {target.external_id(access)}, the external ID of {access.value} access to stack "
                    f"{target.stack}: it does match {probe.external_id}, so it is narrower than this attachment "
                    f'needs. Make the condition StringLike "{external_id_pattern(target.account, target.stack)}" '
                    f'(or "{external_id_pattern(target.account)}" for every stack): see suggested_trust_policy.',
                )
        return self._diagnosis(
            target,
            access,
            refusal,
            ROLE_MISSING_OR_UNTRUSTED,
            f"STS refused the broker ({self.broker_role_arn}) with AccessDenied for {access.value} access. AWS "
            f"gives this same answer when the role {target.role_arn} does not exist and when its trust policy "
            "does not let the broker in, so check both: that the role exists (name and account as in role_arn), "
            f"and that its trust policy allows {self.broker_role_arn} sts:AssumeRole, sts:SetSourceIdentity and "
            f'sts:TagSession when sts:ExternalId is StringLike "{external_id_pattern(target.account, target.stack)}" '
            f"(suggested_trust_policy). {PROPAGATION_HINT}",
            propagation_possible=True,
        )

    def _missing_actions(self, target: Target, access: Access, refusal: RoleRefusedError) -> Diagnosis:
        spec = target.spec(access)
        missing = []
        if self.attempt(spec, tags=True, source_identity=False) is not None:
            missing.append("sts:TagSession")
        if self.attempt(spec, tags=False, source_identity=True) is not None:
            missing.append("sts:SetSourceIdentity")
        if not missing:  # each alone passes, both together not: name both
            missing = ["sts:SetSourceIdentity", "sts:TagSession"]
        codes: dict[tuple[str, ...], str] = {
            ("sts:TagSession",): MISSING_TAG_SESSION,
            ("sts:SetSourceIdentity",): MISSING_SET_SOURCE_IDENTITY,
        }
        code = codes.get(tuple(missing), MISSING_SESSION_ACTIONS)
        purposes = {
            "sts:TagSession": "runcreds tags every session with the account, stack, run, phase and integration",
            "sts:SetSourceIdentity": "runcreds sets the run as the session's source identity",
        }
        return self._diagnosis(
            target,
            access,
            refusal,
            code,
            f"The role {target.role_arn} trusts the broker for sts:AssumeRole but not for "
            f"{' and '.join(missing)} ({'; '.join(purposes[a] for a in missing)}). Add {' and '.join(missing)} "
            f"to the Action list of the trust statement for {self.broker_role_arn} (suggested_trust_policy). "
            f"{PROPAGATION_HINT}",
            missing=missing,
        )

    def _duration(self, target: Target, access: Access, refusal: RoleRefusedError) -> Diagnosis:
        # STS answers ValidationError for both limits; its wording is the only thing telling them apart.
        # The fix is the same: a broker session cannot outlive the one-hour cap on role chaining.
        if "MaxSessionDuration" in refusal.sts_message:
            return self._diagnosis(
                target,
                access,
                refusal,
                DURATION_EXCEEDS_MAX_SESSION,
                f"duration_seconds {target.duration_seconds} is above the role's MaxSessionDuration. Set the "
                f"integration's duration_seconds to {CHAINING_CAP_SECONDS} or less (suggested_integration_patch): "
                "the broker assumes your role from its own role, and AWS caps such chained sessions at one hour "
                "whatever MaxSessionDuration says. For longer sessions, raise MaxSessionDuration and use "
                "assume_role_on_worker.",
                patch={"duration_seconds": CHAINING_CAP_SECONDS},
            )
        return self._diagnosis(
            target,
            access,
            refusal,
            DURATION_EXCEEDS_CHAINING_CAP,
            f"duration_seconds {target.duration_seconds} is above one hour, the cap AWS puts on role chaining: "
            "the broker assumes your role from its own role. Set the integration's duration_seconds to "
            f"{CHAINING_CAP_SECONDS} or less (suggested_integration_patch), or use assume_role_on_worker so that "
            "the worker assumes the role with its own credentials.",
            patch={"duration_seconds": CHAINING_CAP_SECONDS},
        )

    def _diagnosis(
        self,
        target: Target,
        access: Access,
        refusal: RoleRefusedError,
        code: str,
        message: str,
        *,
        patch: dict[str, Any] | None = None,
        missing: list[str] | None = None,
        propagation_possible: bool = False,
    ) -> Diagnosis:
        return Diagnosis(
            code=code,
            message=message,
            target=target,
            access=access,
            principal=self.broker_role_arn,
            sts_code=refusal.code,
            sts_message=refusal.sts_message,
            suggested_integration_patch=patch,
            missing_actions=missing,
            propagation_possible=propagation_possible,
        )
