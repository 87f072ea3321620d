"""Attach verification for OIDC integrations (docs/interface.md §7): a real exchange per enabled access, with a
token as a vend would mint it (`phase:plan` for read, `phase:apply` for write), then the binding check
(a token of another tenant must be refused: `sub_not_enforced`). A refusal is diagnosed by what STS said
and by probes: the same token without tags and source identity, the `sub` of the other access and of
other stacks this integration is attached to. Same interface as verification.Verifier."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from runcreds import aws
from runcreds.exceptions import RoleRefusedError
from runcreds.logic import oidc
from runcreds.logic.trust_policy import oidc_trust_policy_for
from runcreds.logic.verification import (
    CHAINING_CAP_SECONDS,
    DURATION_EXCEEDS_MAX_SESSION,
    MISSING_SESSION_ACTIONS,
    MISSING_SET_SOURCE_IDENTITY,
    MISSING_TAG_SESSION,
    PROPAGATION_HINT,
    ROLE_MISSING_OR_UNTRUSTED,
    STS_REFUSED,
    Diagnosis,
    Target,
    _ReadOnce,
    verify_with_retries,
)
from runcreds.models.entities import MAX_DURATION
from runcreds.models.run import Access, RunPhase
from runcreds.run_scope import PROBE_ACCOUNT, RunScope

# Diagnosis codes of OIDC integrations (docs/attach.md has the table).
OIDC_PROVIDER_MISSING = "oidc_provider_missing"
OIDC_AUDIENCE_NOT_ALLOWED = "oidc_audience_not_allowed"
SUB_MISMATCH = "sub_mismatch"
SUB_NOT_ENFORCED = "sub_not_enforced"
_MAX_OTHER_STACK_PROBES = 3


@dataclass
class OidcVerifier:
    signing_key_arn: str | None
    issuer: str
    # Called before every exchange (the attach API's per-account budget); raises to stop.
    before_call: Callable[[], None] | None = None

    def warm(self, region: str | None) -> None:
        """Build (and cache) the KMS and STS clients now, before threads share them."""
        aws.kms()
        aws.web_identity_sts(region)

    def run_for(self, target: Target, access: Access, account: str | None = None, stack: str | None = None) -> RunPhase:
        return RunScope.verification(
            account or target.account, stack or target.stack, target.integration_id, access
        ).run

    def attempt(
        self,
        target: Target,
        run: RunPhase,
        *,
        tags: bool = True,
        source_identity: bool = True,
        duration_seconds: int | None = None,
    ) -> RoleRefusedError | None:
        """None when STS exchanged the token (the credentials are dropped unread); its refusal otherwise."""
        if not self.signing_key_arn:
            return RoleRefusedError("OidcNotConfigured", "this runcreds deployment has no OIDC signing key")
        if self.before_call is not None:
            self.before_call()
        scope = RunScope(run, target.integration_id)
        spec = scope.assume_role_spec(target.role_arn, duration_seconds or target.duration_seconds, target.region)
        try:
            oidc.exchange(
                self.signing_key_arn,
                self.issuer,
                scope,
                spec,
                tags=tags,
                source_identity=source_identity,
            )
        except RoleRefusedError as refusal:
            return refusal
        return None

    def verify(
        self, target: Target, access: Access, deadline: float | None = None, other_stacks: Iterable[str] = ()
    ) -> Diagnosis | None:
        run = self.run_for(target, access)
        stacks = _ReadOnce(other_stacks)
        return verify_with_retries(
            lambda: self.attempt(target, run),
            lambda refusal: self.diagnose(target, access, refusal, stacks),
            deadline,
        )

    def binds_to_tenant(self, target: Target, access: Access) -> Diagnosis | None:
        """After `verify` passed: a token of another tenant (PROBE_ACCOUNT, same stack and access) must
        be refused; one exchange, its credentials dropped unread if granted."""
        foreign = self.run_for(target, access, account=PROBE_ACCOUNT)
        if self.attempt(target, foreign) is not None:
            return None
        condition = f"{oidc.issuer_host_path(self.issuer)}:sub"
        return self._diagnosis(
            target,
            access,
            None,
            SUB_NOT_ENFORCED,
            f"The role {target.role_arn} accepted a runcreds token of another tenant (sub "
            f"{oidc.subject_for(foreign)}): its trust has no {condition} condition bound to account "
            f"{target.account}, so any tenant of runcreds could attach it and receive its sessions. Add "
            f'StringLike {condition} "{oidc.subject_pattern(target.account, target.stack)}" to its trust statement '
            "for the provider (suggested_trust_policy), and remove any statement that lets the provider in without it.",
        )

    # ------------------------------------------------------------------ diagnosis
    def diagnose(
        self, target: Target, access: Access, refusal: RoleRefusedError, other_stacks: Iterable[str] = ()
    ) -> Diagnosis:
        provider = oidc.provider_arn_for(self.issuer, target.role_arn)
        role_account = target.role_arn.split(":")[4]
        if refusal.code == "InvalidIdentityToken" and "OpenIDConnect provider" in refusal.sts_message:
            return self._diagnosis(
                target,
                access,
                refusal,
                OIDC_PROVIDER_MISSING,
                f"AWS account {role_account} (the role's) has no IAM OIDC identity provider for runcreds' issuer "
                f"{self.issuer}. Create it with URL {self.issuer} and client ID (audience) {oidc.AUDIENCE} "
                f"(customer/oidc-role.yaml does): its ARN will be {provider}. {PROPAGATION_HINT}",
                propagation_possible=True,
            )
        if refusal.code == "InvalidIdentityToken" and "audience" in refusal.sts_message:
            return self._diagnosis(
                target,
                access,
                refusal,
                OIDC_AUDIENCE_NOT_ALLOWED,
                f"The IAM OIDC provider {provider} does not list {oidc.AUDIENCE}, the audience (aud) of runcreds' "
                f"tokens, among its client IDs. Add it (aws iam add-client-id-to-open-id-connect-provider "
                f"--open-id-connect-provider-arn {provider} --client-id {oidc.AUDIENCE}). {PROPAGATION_HINT}",
            )
        if refusal.code == "ValidationError" and "MaxSessionDuration" in refusal.sts_message:
            run = self.run_for(target, access)
            fits = self.attempt(target, run, duration_seconds=CHAINING_CAP_SECONDS) is None
            return self._diagnosis(
                target,
                access,
                refusal,
                DURATION_EXCEEDS_MAX_SESSION,
                f"duration_seconds {target.duration_seconds} is above the role's MaxSessionDuration. Raise the "
                f"role's MaxSessionDuration to at least {target.duration_seconds} (up to {MAX_DURATION}: OIDC "
                "sessions are not chained, so the one-hour cap does not apply), or lower the integration's "
                "duration_seconds" + (" (suggested_integration_patch)." if fits else "."),
                patch={"duration_seconds": CHAINING_CAP_SECONDS} if fits else None,
            )
        if refusal.code == "AccessDenied":
            return self._access_denied(target, access, refusal, other_stacks)
        return self._diagnosis(
            target,
            access,
            refusal,
            STS_REFUSED,
            f"STS refused runcreds' token for {access.value} access with {refusal.code}: {refusal.sts_message}",
        )

    def _access_denied(
        self, target: Target, access: Access, refusal: RoleRefusedError, other_stacks: Iterable[str]
    ) -> Diagnosis:
        run = self.run_for(target, access)
        if self.attempt(target, run, tags=False, source_identity=False) is None:
            return self._missing_actions(target, access, refusal, run)
        sub = oidc.subject_for(run)
        condition = f"{oidc.issuer_host_path(self.issuer)}:sub"
        pattern = oidc.subject_pattern(target.account, target.stack)
        candidates = [self.run_for(target, access.other)] + [
            self.run_for(target, access, stack=stack)
            for stack in list(other_stacks)[:_MAX_OTHER_STACK_PROBES]
            if stack != target.stack
        ]
        for probe in candidates:
            if self.attempt(target, probe, tags=False, source_identity=False) is None:
                return self._diagnosis(
                    target,
                    access,
                    refusal,
                    SUB_MISMATCH,
                    f"The role {target.role_arn} trusts runcreds' tokens, but its {condition} condition does not "
                    f"match {sub}, the sub of {access.value} access to stack {target.stack}: it does match "
                    f'{oidc.subject_for(probe)}, so it is narrower than this attachment needs. Make it StringLike "'
                    f'{pattern}" (or "{oidc.subject_pattern(target.account)}" for every stack): see '
                    "suggested_trust_policy.",
                )
        provider = oidc.provider_arn_for(self.issuer, target.role_arn)
        return self._diagnosis(
            target,
            access,
            refusal,
            ROLE_MISSING_OR_UNTRUSTED,
            f"STS refused runcreds' token (sub {sub}) with AccessDenied for {access.value} access. AWS gives this "
            f"same answer when the role {target.role_arn} does not exist, when its trust policy does not name the "
            f"provider {provider} as Federated principal for sts:AssumeRoleWithWebIdentity, when its "
            f'{oidc.issuer_host_path(self.issuer)}:aud condition is not "{oidc.AUDIENCE}", and when its {condition} '
            f'condition does not match {sub}: the trust needs StringLike {condition} "{pattern}" '
            f"(suggested_trust_policy). {PROPAGATION_HINT}",
            propagation_possible=True,
        )

    def _missing_actions(self, target: Target, access: Access, refusal: RoleRefusedError, run: RunPhase) -> Diagnosis:
        missing = []
        if self.attempt(target, run, tags=True, source_identity=False) is not None:
            missing.append("sts:TagSession")
        if self.attempt(target, run, tags=False, source_identity=True) is not None:
            missing.append("sts:SetSourceIdentity")
        if not missing:
            missing = ["sts:SetSourceIdentity", "sts:TagSession"]
        codes: dict[tuple[str, ...], str] = {
            ("sts:TagSession",): MISSING_TAG_SESSION,
            ("sts:SetSourceIdentity",): MISSING_SET_SOURCE_IDENTITY,
        }
        return self._diagnosis(
            target,
            access,
            refusal,
            codes.get(tuple(missing), MISSING_SESSION_ACTIONS),
            f"The role {target.role_arn} trusts runcreds' tokens for sts:AssumeRoleWithWebIdentity but not for "
            f"{' and '.join(missing)}: the token carries the run's session tags and its source identity. Add "
            f"{' and '.join(missing)} to the Action list of the trust statement for the provider "
            f"(suggested_trust_policy). {PROPAGATION_HINT}",
            missing=missing,
        )

    def _diagnosis(
        self,
        target: Target,
        access: Access,
        refusal: RoleRefusedError | None,
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
            principal=oidc.provider_arn_for(self.issuer, target.role_arn),
            sts_code=refusal.code if refusal else None,
            sts_message=refusal.sts_message if refusal else None,
            suggested_integration_patch=patch,
            missing_actions=missing,
            propagation_possible=propagation_possible,
            sub=oidc.subject_for(self.run_for(target, access)),
            oidc_trust_policy=oidc_trust_policy_for(self.issuer, target.role_arn, target.account, target.stack),
        )
