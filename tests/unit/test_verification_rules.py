"""Broker-role verification's rules (logic/verification/rules.py), with an injected STS double (a tiny role
model, no moto): every diagnosis code, the order in which the causes are tried, and the probes each needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatch

import pytest

from runcreds.exceptions import RoleRefusedError
from runcreds.logic import verification as v
from runcreds.logic.verification import rules
from runcreds.models.bodies import DiagnosisBody
from runcreds.models.run import Access
from runcreds.run_scope import AssumeRoleSpec

Code = v.DiagnosisCode
BROKER = "arn:aws:iam::111111111111:role/runcreds-broker"
ROLE = "arn:aws:iam::222222222222:role/deploy"


@dataclass
class FakeRole:
    """What STS answers for one role: a trust of the broker (an external ID pattern, None: no condition),
    the session actions it allows, its MaxSessionDuration, whether the region's STS is active."""

    external_id: str | None = "acme@*@web@*"
    tag_session: bool = True
    set_source_identity: bool = True
    max_session: int = 3600
    region_disabled: bool = False
    trusts_no_external_id: bool = False  # a second statement without the condition
    calls: list[AssumeRoleSpec] = field(default_factory=list)

    def warm(self, region: str | None) -> None:
        pass

    def assume_role(
        self, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool, external_id: bool
    ) -> RoleRefusedError | None:
        self.calls.append(spec)
        if self.region_disabled:
            return RoleRefusedError("RegionDisabledException", "STS is not activated in this region")
        sent = spec.external_id if external_id else None
        trusted = self.external_id is None or (sent is not None and fnmatch(sent, self.external_id))
        trusted = trusted or (sent is None and self.trusts_no_external_id)
        if not trusted or (tags and not self.tag_session) or (source_identity and not self.set_source_identity):
            return RoleRefusedError("AccessDenied", "not authorized to perform: sts:AssumeRole")
        if spec.duration_seconds > self.max_session:
            return RoleRefusedError("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration")
        if spec.duration_seconds > v.CHAINING_CAP_SECONDS:
            return RoleRefusedError(
                "ValidationError", "exceeds the 1 hour session limit for roles assumed by role chaining"
            )
        return None


def target(duration: int = 3600, region: str | None = None) -> v.Target:
    return v.Target("acme", "deploy", "web", ROLE, duration, region)


def verify(role: FakeRole, duration: int = 3600, others: tuple[str, ...] = ()) -> DiagnosisBody | None:
    verifier = v.Verifier(BROKER, "test", sts=role)
    return verifier.verify(target(duration), Access.WRITE, other_stacks=others)


def bind(role: FakeRole) -> DiagnosisBody | None:
    return v.Verifier(BROKER, "test", sts=role).binds_to_tenant(target(), Access.WRITE)


def test_a_role_that_trusts_the_broker_as_a_vend_would_passes_both_checks() -> None:
    role = FakeRole()
    assert verify(role) is None
    assert bind(role) is None
    assert len(role.calls) == 3  # the vend's request, then the two binding probes: nothing else


@pytest.mark.parametrize(
    ("role", "code", "missing"),
    [
        (FakeRole(tag_session=False), Code.MISSING_TAG_SESSION, ["sts:TagSession"]),
        (FakeRole(set_source_identity=False), Code.MISSING_SET_SOURCE_IDENTITY, ["sts:SetSourceIdentity"]),
        (
            FakeRole(tag_session=False, set_source_identity=False),
            Code.MISSING_SESSION_ACTIONS,
            ["sts:TagSession", "sts:SetSourceIdentity"],
        ),
    ],
)
def test_a_trust_without_session_actions_names_the_missing_ones(role: FakeRole, code: str, missing: list[str]) -> None:
    # (both missing comes first in the table: after it, the TagSession rule would hold as well)
    diagnosis = verify(role)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.missing_actions) == (code, missing)
    assert " and ".join(missing) in diagnosis.message


def test_a_trust_that_refuses_tags_and_source_identity_together_only_names_both() -> None:
    @dataclass
    class EitherAlone(FakeRole):
        def assume_role(
            self, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool, external_id: bool
        ) -> RoleRefusedError | None:
            if tags and source_identity:
                self.calls.append(spec)
                return RoleRefusedError("AccessDenied", "not authorized to perform: sts:TagSession")
            return super().assume_role(spec, tags=tags, source_identity=source_identity, external_id=external_id)

    diagnosis = verify(EitherAlone())
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.missing_actions) == (
        Code.MISSING_SESSION_ACTIONS,
        ["sts:SetSourceIdentity", "sts:TagSession"],
    )


def test_an_external_id_condition_for_the_other_access_only_is_a_mismatch() -> None:
    diagnosis = verify(FakeRole(external_id="acme@deploy@web@read"))
    assert diagnosis is not None and diagnosis.code == Code.EXTERNAL_ID_MISMATCH
    assert "it does match acme@deploy@web@read" in diagnosis.message  # names the external ID that does match


def test_an_external_id_condition_for_another_stack_is_a_mismatch() -> None:
    diagnosis = verify(FakeRole(external_id="acme@*@api@*"), others=("api",))
    assert diagnosis is not None and diagnosis.code == Code.EXTERNAL_ID_MISMATCH
    assert "it does match acme@deploy@api@write" in diagnosis.message


def test_only_three_other_stacks_are_probed_and_never_the_verified_one() -> None:
    role = FakeRole(external_id="acme@*@api@*")
    diagnosis = verify(role, others=("web", "x", "y", "api"))  # api is the fourth: beyond the probes
    assert diagnosis is not None and diagnosis.code == Code.ROLE_MISSING_OR_UNTRUSTED
    probed = [spec.external_id for spec in role.calls]
    assert probed[2:] == ["acme@deploy@web@read", "acme@deploy@x@write", "acme@deploy@y@write"]


def test_a_role_that_lets_nothing_of_this_integration_in_is_missing_or_untrusted() -> None:
    diagnosis = verify(FakeRole(external_id="other@*"), others=("api",))
    assert diagnosis is not None
    assert diagnosis.code == Code.ROLE_MISSING_OR_UNTRUSTED
    assert diagnosis.code in rules.PROPAGATION_POSSIBLE  # retried while IAM propagates


def test_a_disabled_region_suggests_the_brokers_own_without_probing() -> None:
    role = FakeRole(region_disabled=True)
    diagnosis = verify(role)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.suggested_integration_patch) == (Code.STS_REGION_DISABLED, {"region": None})
    assert len(role.calls) == 1


@pytest.mark.parametrize(
    ("max_session", "code"),
    [(3600, Code.DURATION_EXCEEDS_MAX_SESSION), (43200, Code.DURATION_EXCEEDS_CHAINING_CAP)],
)
def test_a_duration_over_an_hour_suggests_an_hour(max_session: int, code: str) -> None:
    # (MaxSessionDuration comes first in the table: the chaining cap's rule does not read STS's wording)
    diagnosis = verify(FakeRole(max_session=max_session), duration=7200)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.suggested_integration_patch) == (code, {"duration_seconds": 3600})


def test_another_refusal_is_sts_refused_with_stss_own_words() -> None:
    diagnosis = verify(FakeRole(max_session=1800))  # ValidationError, and an hour does not fit either
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.sts_code) == (Code.STS_REFUSED, "ValidationError")
    assert diagnosis.message.endswith(
        "with ValidationError: The requested DurationSeconds exceeds the MaxSessionDuration"
    )


@pytest.mark.parametrize(
    ("role", "granted_with", "calls"),
    [
        (FakeRole(external_id=None), "the external ID runcreds-probe@deploy@web@write", 1),
        (FakeRole(external_id="*"), "the external ID runcreds-probe@deploy@web@write", 1),
        (FakeRole(trusts_no_external_id=True), "no external ID at all", 2),
    ],
)
def test_a_role_that_does_not_demand_the_tenants_external_id_is_not_enforced(
    role: FakeRole, granted_with: str, calls: int
) -> None:
    # Order: as another tenant first, then without any external ID (not asked once the first is granted)
    diagnosis = bind(role)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.sts_code) == (Code.EXTERNAL_ID_NOT_ENFORCED, None)
    assert f"with {granted_with}, which is not" in diagnosis.message
    assert len(role.calls) == calls


def test_missing_session_actions_come_before_the_external_id_checks() -> None:
    # Order: the vend's own request is diagnosed first (here: TagSession missing, although the role would
    # also let in every external ID); the binding check is made only once the vend's request passes.
    role = FakeRole(external_id=None, tag_session=False)
    diagnosis = verify(role, others=("api",))
    assert diagnosis is not None and diagnosis.code == Code.MISSING_TAG_SESSION
    assert len(role.calls) == 4  # the request, then without tags and SI, tags only, SI only: no other probe


def test_a_mismatch_comes_before_missing_or_untrusted() -> None:
    role = FakeRole(external_id="acme@deploy@web@read")
    diagnosis = verify(role, others=("api", "db"))
    assert diagnosis is not None and diagnosis.code == Code.EXTERNAL_ID_MISMATCH
    assert len(role.calls) == 3  # the request, without tags and SI, the other access: found, no stack probed


def test_every_call_is_charged_to_the_budget_first() -> None:
    role, charged = FakeRole(external_id="other@*"), []
    verifier = v.Verifier(BROKER, "test", before_call=lambda: charged.append(len(role.calls)), sts=role)
    verifier.verify(target(), Access.WRITE, other_stacks=("api",))
    assert charged == list(range(len(role.calls)))  # once before each call, none after


def test_every_diagnosis_is_the_documented_model_and_its_answer_has_the_fields_it_always_had() -> None:
    roles = [FakeRole(tag_session=False), FakeRole(external_id="acme@deploy@web@read"), FakeRole(external_id="x")]
    diagnoses = [verify(role) for role in roles] + [bind(FakeRole(external_id=None))]
    required = ["code", "phase", "stack", "external_id", "principal", "role_arn", "sts_code", "sts_message"]
    for diagnosis in diagnoses:
        assert isinstance(diagnosis, DiagnosisBody)
        fields = diagnosis.fields()
        assert list(fields)[: len(required) + 1] == [*required, "suggested_trust_policy"]
        assert "message" not in fields and "sub" not in fields  # message is the answer's own; sub is OIDC's
        assert ("missing_actions" in fields) == (diagnosis.missing_actions is not None)
        assert fields["suggested_trust_policy"]["Statement"][0]["Principal"] == {"AWS": BROKER}
