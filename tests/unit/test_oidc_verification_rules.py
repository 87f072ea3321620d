"""OIDC verification's rules (logic/verification/rules.py, OIDC_TRUST and OIDC_BINDING), with an injected
web-identity STS double (a tiny trust model, no KMS, no moto): every code, and the order of the causes."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatch

import pytest

from runcreds.exceptions import RoleRefusedError
from runcreds.logic import oidc
from runcreds.logic import verification as v
from runcreds.logic.verification import rules
from runcreds.models.bodies import DiagnosisBody
from runcreds.models.run import Access
from runcreds.run_scope import AssumeRoleSpec, RunScope

Code = v.DiagnosisCode
ISSUER = "https://runcreds.example.com/oidc"
ROLE = "arn:aws:iam::222222222222:role/deploy"
PROVIDER = "arn:aws:iam::222222222222:oidc-provider/runcreds.example.com/oidc"


@dataclass
class FakeTrust:
    """What STS answers to runcreds' token for one role: whether the account has the provider and it lists
    the audience, the sub pattern of the trust (None: no condition), its session actions and
    MaxSessionDuration; `refusal`: STS answers that to everything."""

    sub: str | None = "account:acme:stack:web:*"
    provider: bool = True
    audience: bool = True
    tag_session: bool = True
    set_source_identity: bool = True
    max_session: int = 3600
    refusal: RoleRefusedError | None = None
    calls: list[str] = field(default_factory=list)  # the sub of each token exchanged

    def warm(self, region: str | None) -> None:
        pass

    def exchange(
        self, scope: RunScope, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool
    ) -> RoleRefusedError | None:
        sub = oidc.subject_for(scope.run)
        self.calls.append(sub)
        if self.refusal is not None:
            return self.refusal
        if not self.provider:
            return RoleRefusedError("InvalidIdentityToken", "No OpenIDConnect provider found in your account")
        if not self.audience:
            return RoleRefusedError("InvalidIdentityToken", "Incorrect token audience")
        trusted = self.sub is None or fnmatch(sub, self.sub)
        if not trusted or (tags and not self.tag_session) or (source_identity and not self.set_source_identity):
            return RoleRefusedError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        if spec.duration_seconds > self.max_session:
            return RoleRefusedError("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration")
        return None


def target(duration: int = 3600) -> v.Target:
    return v.Target("acme", "deploy", "web", ROLE, duration, None)


def verifier(trust: FakeTrust) -> v.OidcVerifier:
    return v.OidcVerifier("arn:aws:kms:eu-west-1:111111111111:key/a", ISSUER, sts=trust)


def verify(trust: FakeTrust, duration: int = 3600, others: tuple[str, ...] = ()) -> DiagnosisBody | None:
    return verifier(trust).verify(target(duration), Access.WRITE, other_stacks=others)


def sub_of(stack: str = "web", access: str = "write", account: str = "acme") -> str:
    phase = {"read": "plan", "write": "apply"}[access]
    return f"account:{account}:stack:{stack}:phase:{phase}:access:{access}"


def test_a_trust_that_takes_the_vends_token_and_refuses_another_tenants_passes_both_checks() -> None:
    trust = FakeTrust()
    assert verify(trust) is None
    assert verifier(trust).binds_to_tenant(target(), Access.WRITE) is None
    assert trust.calls == [sub_of(), sub_of(account="runcreds-probe")]


@pytest.mark.parametrize(
    ("trust", "code", "retried"),
    [
        (FakeTrust(provider=False), Code.OIDC_PROVIDER_MISSING, True),
        (FakeTrust(audience=False), Code.OIDC_AUDIENCE_NOT_ALLOWED, False),
        (FakeTrust(refusal=RoleRefusedError("ExpiredTokenException", "expired")), Code.STS_REFUSED, False),
    ],
)
def test_what_sts_says_of_the_token_is_diagnosed_without_probing(trust: FakeTrust, code: str, retried: bool) -> None:
    diagnosis = verify(trust)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.code in rules.PROPAGATION_POSSIBLE) == (code, retried)
    assert len(trust.calls) == 1


@pytest.mark.parametrize(
    ("trust", "code", "missing"),
    [
        (FakeTrust(tag_session=False), Code.MISSING_TAG_SESSION, ["sts:TagSession"]),
        (FakeTrust(set_source_identity=False), Code.MISSING_SET_SOURCE_IDENTITY, ["sts:SetSourceIdentity"]),
        (
            FakeTrust(tag_session=False, set_source_identity=False),
            Code.MISSING_SESSION_ACTIONS,
            ["sts:TagSession", "sts:SetSourceIdentity"],
        ),
    ],
)
def test_a_trust_without_session_actions_names_the_missing_ones(
    trust: FakeTrust, code: str, missing: list[str]
) -> None:
    diagnosis = verify(trust)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.missing_actions) == (code, missing)


def test_a_trust_that_refuses_tags_and_source_identity_together_only_names_both() -> None:
    # (before the sub checks: the other access's bare token would pass too)
    @dataclass
    class EitherAlone(FakeTrust):
        def exchange(
            self, scope: RunScope, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool
        ) -> RoleRefusedError | None:
            if tags and source_identity:
                self.calls.append(oidc.subject_for(scope.run))
                return RoleRefusedError("AccessDenied", "Not authorized to perform sts:TagSession")
            return super().exchange(scope, spec, tags=tags, source_identity=source_identity)

    diagnosis = verify(EitherAlone())
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.missing_actions) == (
        Code.MISSING_SESSION_ACTIONS,
        ["sts:SetSourceIdentity", "sts:TagSession"],
    )


def test_a_sub_condition_for_the_other_access_only_is_a_mismatch_naming_the_sub_it_matches() -> None:
    diagnosis = verify(FakeTrust(sub="account:acme:stack:web:*:access:read"))
    assert diagnosis is not None and diagnosis.code == Code.SUB_MISMATCH
    assert f"it does match {sub_of(access='read')}" in diagnosis.message


def test_a_sub_condition_for_another_stack_is_a_mismatch() -> None:
    trust = FakeTrust(sub="account:acme:stack:api:*")
    diagnosis = verify(trust, others=("api",))
    assert diagnosis is not None and diagnosis.code == Code.SUB_MISMATCH
    assert trust.calls[2:] == [sub_of(access="read"), sub_of(stack="api")]


def test_a_trust_that_takes_no_token_of_this_integration_is_missing_or_untrusted() -> None:
    diagnosis = verify(FakeTrust(sub="account:other:*"), others=("api",))
    assert diagnosis is not None
    assert diagnosis.code == Code.ROLE_MISSING_OR_UNTRUSTED and diagnosis.code in rules.PROPAGATION_POSSIBLE
    assert f"(sub {sub_of()})" in diagnosis.message


@pytest.mark.parametrize(("max_session", "patch"), [(3600, {"duration_seconds": 3600}), (1800, None)])
def test_a_duration_over_max_session_suggests_an_hour_only_when_an_hour_passes(
    max_session: int, patch: dict[str, int] | None
) -> None:
    # (the rule with the patch comes first: the one without holds whenever the wording does)
    diagnosis = verify(FakeTrust(max_session=max_session), duration=7200)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.suggested_integration_patch) == (Code.DURATION_EXCEEDS_MAX_SESSION, patch)
    assert diagnosis.message.endswith("(suggested_integration_patch)." if patch else "duration_seconds.")


def test_a_trust_without_sub_condition_is_not_enforced() -> None:
    trust = FakeTrust(sub=None)
    diagnosis = verifier(trust).binds_to_tenant(target(), Access.WRITE)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.sts_code) == (Code.SUB_NOT_ENFORCED, None)
    assert f"(sub {sub_of(account='runcreds-probe')})" in diagnosis.message


def test_missing_session_actions_come_before_the_sub_checks() -> None:
    trust = FakeTrust(sub=None, tag_session=False)
    diagnosis = verify(trust, others=("api",))
    assert diagnosis is not None and diagnosis.code == Code.MISSING_TAG_SESSION
    assert len(trust.calls) == 4  # the token, then without tags and SI, tags only, SI only: no other sub


def test_a_deployment_without_signing_key_refuses_without_calling_or_charging() -> None:
    charged: list[None] = []
    unconfigured = v.OidcVerifier(None, ISSUER, before_call=lambda: charged.append(None))
    diagnosis = unconfigured.verify(target(), Access.WRITE)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.sts_code, charged) == (Code.STS_REFUSED, "OidcNotConfigured", [])


def test_the_answer_names_the_provider_and_the_sub_not_an_external_id() -> None:
    diagnosis = verify(FakeTrust(tag_session=False))
    assert diagnosis is not None
    fields = diagnosis.fields()
    assert (fields["principal"], fields["external_id"], fields["sub"]) == (PROVIDER, None, sub_of())
    assert list(fields)[-1] == "sub"  # where the API always put it
    assert fields["suggested_trust_policy"]["Statement"][0]["Principal"] == {"Federated": PROVIDER}
