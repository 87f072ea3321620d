"""The prose of every diagnosis (DiagnosisBody.message), one place: for each trust, code → message.

A message is written from the case: the evidence (what STS said and was asked) and the rule that held.
It reads only facts the rule already asked: writing a message never calls STS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from runcreds.exceptions import RoleRefusedError
from runcreds.logic import oidc
from runcreds.logic.trust_policy import external_id_pattern
from runcreds.logic.verification.model import CHAINING_CAP_SECONDS, DiagnosisCode, Target
from runcreds.logic.verification.probes import ANOTHER_TENANT, AS_VERIFIED, Evidence
from runcreds.logic.verification.rules import Rule
from runcreds.models.entities import MAX_DURATION
from runcreds.models.run import Access

Code = DiagnosisCode
PROPAGATION_HINT = "IAM changes can take up to a minute to reach STS: if you just created or changed the role, retry."
_PURPOSES = {
    "sts:TagSession": "runcreds tags every session with the account, stack, run, phase and integration",
    "sts:SetSourceIdentity": "runcreds sets the run as the session's source identity",
}


@dataclass(frozen=True)
class Case:
    evidence: Evidence
    rule: Rule
    principal: str  # the broker role, or the OIDC provider
    issuer: str = ""  # OIDC integrations: runcreds' issuer

    @property
    def target(self) -> Target:
        return self.evidence.target

    @property
    def access(self) -> Access:
        return self.evidence.access

    @property
    def refusal(self) -> RoleRefusedError:
        assert self.evidence.refusal is not None, "a trust rule diagnoses a refusal"
        return self.evidence.refusal

    @property
    def missing(self) -> str:
        return " and ".join(self.rule.missing_actions or ())

    @property
    def matched(self) -> str:
        """The external ID (or sub) of the other binding the role accepts."""
        assert self.evidence.matched is not None
        return self.evidence.name(self.evidence.matched)

    @property
    def sub_condition(self) -> str:
        return f"{oidc.issuer_host_path(self.issuer)}:sub"


Message = Callable[[Case], str]


# ---------------------------------------------------------------------- broker roles
def _missing_actions(case: Case) -> str:
    actions = case.rule.missing_actions or ()
    return (
        f"The role {case.target.role_arn} trusts the broker for sts:AssumeRole but not for "
        f"{case.missing} ({'; '.join(_PURPOSES[a] for a in actions)}). Add {case.missing} "
        f"to the Action list of the trust statement for {case.principal} (suggested_trust_policy). "
        f"{PROPAGATION_HINT}"
    )


def _external_id_mismatch(case: Case) -> str:
    target, access = case.target, case.access
    return (
        f"The role {target.role_arn} trusts the broker, but its sts:ExternalId condition does not "
        f"match {target.external_id(access)}, the external ID of {access.value} access to stack "
        f"{target.stack}: it does match {case.matched}, so it is narrower than this attachment "
        f'needs. Make the condition StringLike "{external_id_pattern(target.account, target.stack)}" '
        f'(or "{external_id_pattern(target.account)}" for every stack): see suggested_trust_policy.'
    )


def _role_missing_or_untrusted(case: Case) -> str:
    target = case.target
    return (
        f"STS refused the broker ({case.principal}) with AccessDenied for {case.access.value} access. AWS "
        f"gives this same answer when the role {target.role_arn} does not exist and when its trust policy "
        "does not let the broker in, so check both: that the role exists (name and account as in role_arn), "
        f"and that its trust policy allows {case.principal} sts:AssumeRole, sts:SetSourceIdentity and "
        f'sts:TagSession when sts:ExternalId is StringLike "{external_id_pattern(target.account, target.stack)}" '
        f"(suggested_trust_policy). {PROPAGATION_HINT}"
    )


def _region_disabled(case: Case) -> str:
    return (
        f"STS is not activated in region {case.target.region}, the integration's region, so the broker cannot "
        "assume the role there. Activate the region's STS endpoint (IAM console, Account settings, "
        "Security Token Service), or PATCH the integration's region to a region where STS is active "
        "(null: the broker's own region)."
    )


def _over_max_session(case: Case) -> str:
    return (
        f"duration_seconds {case.target.duration_seconds} is above the role's MaxSessionDuration. Set the "
        f"integration's duration_seconds to {CHAINING_CAP_SECONDS} or less (suggested_integration_patch): "
        "the broker assumes your role from its own role, and AWS caps such chained sessions at one hour "
        "whatever MaxSessionDuration says. For longer sessions, raise MaxSessionDuration and use "
        "assume_role_on_worker."
    )


def _over_chaining_cap(case: Case) -> str:
    return (
        f"duration_seconds {case.target.duration_seconds} is above one hour, the cap AWS puts on role chaining: "
        "the broker assumes your role from its own role. Set the integration's duration_seconds to "
        f"{CHAINING_CAP_SECONDS} or less (suggested_integration_patch), or use assume_role_on_worker so that "
        "the worker assumes the role with its own credentials."
    )


def _sts_refused(case: Case) -> str:
    return f"STS refused the broker for {case.access.value} access with {case.refusal.code}: {case.refusal.sts_message}"


def _external_id_not_enforced(case: Case) -> str:
    target, evidence = case.target, case.evidence
    foreign = evidence.granted(ANOTHER_TENANT)  # asked already: it is the binding's first rule
    granted_with = f"the external ID {evidence.name(ANOTHER_TENANT)}" if foreign else "no external ID at all"
    return (
        f"The role {target.role_arn} does not demand this tenant's external ID: STS let the broker assume "
        f"it with {granted_with}, which is not {target.external_id(case.access)}: any tenant of runcreds could "
        "attach such a role and receive its sessions. Make its trust statement for "
        f'{case.principal} require sts:ExternalId StringLike "'
        f'{external_id_pattern(target.account, target.stack)}" (suggested_trust_policy), and remove any '
        "statement that lets the broker, or runcreds' whole account, in without that condition."
    )


ROLE_MESSAGES: Mapping[DiagnosisCode, Message] = {
    Code.MISSING_SESSION_ACTIONS: _missing_actions,
    Code.MISSING_TAG_SESSION: _missing_actions,
    Code.MISSING_SET_SOURCE_IDENTITY: _missing_actions,
    Code.EXTERNAL_ID_MISMATCH: _external_id_mismatch,
    Code.ROLE_MISSING_OR_UNTRUSTED: _role_missing_or_untrusted,
    Code.STS_REGION_DISABLED: _region_disabled,
    Code.DURATION_EXCEEDS_MAX_SESSION: _over_max_session,
    Code.DURATION_EXCEEDS_CHAINING_CAP: _over_chaining_cap,
    Code.STS_REFUSED: _sts_refused,
    Code.EXTERNAL_ID_NOT_ENFORCED: _external_id_not_enforced,
}


# ---------------------------------------------------------------------- OIDC integrations
def _oidc_provider_missing(case: Case) -> str:
    role_account = case.target.role_arn.split(":")[4]
    return (
        f"AWS account {role_account} (the role's) has no IAM OIDC identity provider for runcreds' issuer "
        f"{case.issuer}. Create it with URL {case.issuer} and client ID (audience) {oidc.AUDIENCE} "
        f"(customer/oidc-role.yaml does): its ARN will be {case.principal}. {PROPAGATION_HINT}"
    )


def _oidc_audience_not_allowed(case: Case) -> str:
    provider = case.principal
    return (
        f"The IAM OIDC provider {provider} does not list {oidc.AUDIENCE}, the audience (aud) of runcreds' "
        f"tokens, among its client IDs. Add it (aws iam add-client-id-to-open-id-connect-provider "
        f"--open-id-connect-provider-arn {provider} --client-id {oidc.AUDIENCE}). {PROPAGATION_HINT}"
    )


def _oidc_over_max_session(case: Case) -> str:
    duration = case.target.duration_seconds
    return (
        f"duration_seconds {duration} is above the role's MaxSessionDuration. Raise the "
        f"role's MaxSessionDuration to at least {duration} (up to {MAX_DURATION}: OIDC "
        "sessions are not chained, so the one-hour cap does not apply), or lower the integration's "
        "duration_seconds" + (" (suggested_integration_patch)." if case.rule.patch is not None else ".")
    )


def _oidc_missing_actions(case: Case) -> str:
    return (
        f"The role {case.target.role_arn} trusts runcreds' tokens for sts:AssumeRoleWithWebIdentity but not for "
        f"{case.missing}: the token carries the run's session tags and its source identity. Add "
        f"{case.missing} to the Action list of the trust statement for the provider "
        f"(suggested_trust_policy). {PROPAGATION_HINT}"
    )


def _sub_mismatch(case: Case) -> str:
    target, access = case.target, case.access
    return (
        f"The role {target.role_arn} trusts runcreds' tokens, but its {case.sub_condition} condition does not "
        f"match {case.evidence.name(AS_VERIFIED)}, the sub of {access.value} access to stack {target.stack}: it "
        f'does match {case.matched}, so it is narrower than this attachment needs. Make it StringLike "'
        f'{oidc.subject_pattern(target.account, target.stack)}" (or "{oidc.subject_pattern(target.account)}" '
        "for every stack): see suggested_trust_policy."
    )


def _oidc_role_missing_or_untrusted(case: Case) -> str:
    target, sub, condition = case.target, case.evidence.name(AS_VERIFIED), case.sub_condition
    return (
        f"STS refused runcreds' token (sub {sub}) with AccessDenied for {case.access.value} access. AWS gives this "
        f"same answer when the role {target.role_arn} does not exist, when its trust policy does not name the "
        f"provider {case.principal} as Federated principal for sts:AssumeRoleWithWebIdentity, when its "
        f'{oidc.issuer_host_path(case.issuer)}:aud condition is not "{oidc.AUDIENCE}", and when its {condition} '
        f'condition does not match {sub}: the trust needs StringLike {condition} "'
        f'{oidc.subject_pattern(target.account, target.stack)}" (suggested_trust_policy). {PROPAGATION_HINT}'
    )


def _oidc_sts_refused(case: Case) -> str:
    refusal = case.refusal
    return f"STS refused runcreds' token for {case.access.value} access with {refusal.code}: {refusal.sts_message}"


def _sub_not_enforced(case: Case) -> str:
    target, condition = case.target, case.sub_condition
    return (
        f"The role {target.role_arn} accepted a runcreds token of another tenant (sub "
        f"{case.evidence.name(ANOTHER_TENANT)}): its trust has no {condition} condition bound to account "
        f"{target.account}, so any tenant of runcreds could attach it and receive its sessions. Add "
        f'StringLike {condition} "{oidc.subject_pattern(target.account, target.stack)}" to its trust statement '
        "for the provider (suggested_trust_policy), and remove any statement that lets the provider in without it."
    )


OIDC_MESSAGES: Mapping[DiagnosisCode, Message] = {
    Code.OIDC_PROVIDER_MISSING: _oidc_provider_missing,
    Code.OIDC_AUDIENCE_NOT_ALLOWED: _oidc_audience_not_allowed,
    Code.DURATION_EXCEEDS_MAX_SESSION: _oidc_over_max_session,
    Code.MISSING_SESSION_ACTIONS: _oidc_missing_actions,
    Code.MISSING_TAG_SESSION: _oidc_missing_actions,
    Code.MISSING_SET_SOURCE_IDENTITY: _oidc_missing_actions,
    Code.SUB_MISMATCH: _sub_mismatch,
    Code.ROLE_MISSING_OR_UNTRUSTED: _oidc_role_missing_or_untrusted,
    Code.STS_REFUSED: _oidc_sts_refused,
    Code.SUB_NOT_ENFORCED: _sub_not_enforced,
}
