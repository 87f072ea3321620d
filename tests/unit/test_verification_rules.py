"""Broker-role verification's diagnoses, with an injected STS double (a tiny role model, no moto): every
diagnosis code, and the order in which the causes are tried."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatch

import pytest

from runcreds.exceptions import RoleRefusedError
from runcreds.logic import verification as v
from runcreds.models.bodies import DiagnosisBody
from runcreds.models.run import Access
from runcreds.run_scope import AssumeRoleSpec

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


def verify(role: FakeRole, duration: int = 3600, others: tuple[str, ...] = ()) -> v.Diagnosis | None:
    verifier = v.Verifier(BROKER, "test", sts=role)
    return verifier.verify(target(duration), Access.WRITE, other_stacks=others)


def bind(role: FakeRole) -> v.Diagnosis | None:
    return v.Verifier(BROKER, "test", sts=role).binds_to_tenant(target(), Access.WRITE)


def test_a_role_that_trusts_the_broker_as_a_vend_would_passes_both_checks() -> None:
    assert verify(FakeRole()) is None
    assert bind(FakeRole()) is None


@pytest.mark.parametrize(
    ("role", "code", "missing"),
    [
        (FakeRole(tag_session=False), v.MISSING_TAG_SESSION, ["sts:TagSession"]),
        (FakeRole(set_source_identity=False), v.MISSING_SET_SOURCE_IDENTITY, ["sts:SetSourceIdentity"]),
        (
            FakeRole(tag_session=False, set_source_identity=False),
            v.MISSING_SESSION_ACTIONS,
            ["sts:TagSession", "sts:SetSourceIdentity"],
        ),
    ],
)
def test_a_trust_without_session_actions_names_the_missing_ones(role: FakeRole, code: str, missing: list[str]) -> None:
    diagnosis = verify(role)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.missing_actions) == (code, missing)


def test_an_external_id_condition_for_the_other_access_only_is_a_mismatch() -> None:
    diagnosis = verify(FakeRole(external_id="acme@deploy@web@read"))
    assert diagnosis is not None and diagnosis.code == v.EXTERNAL_ID_MISMATCH
    assert "acme@deploy@web@read" in diagnosis.message  # names the external ID that does match


def test_an_external_id_condition_for_another_stack_is_a_mismatch() -> None:
    diagnosis = verify(FakeRole(external_id="acme@*@api@*"), others=("api",))
    assert diagnosis is not None and diagnosis.code == v.EXTERNAL_ID_MISMATCH


def test_a_role_that_lets_nothing_of_this_integration_in_is_missing_or_untrusted() -> None:
    diagnosis = verify(FakeRole(external_id="other@*"), others=("api",))
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.propagation_possible) == (v.ROLE_MISSING_OR_UNTRUSTED, True)


def test_a_disabled_region_suggests_the_brokers_own() -> None:
    diagnosis = verify(FakeRole(region_disabled=True))
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.suggested_integration_patch) == (v.STS_REGION_DISABLED, {"region": None})


@pytest.mark.parametrize(
    ("max_session", "code"),
    [(3600, v.DURATION_EXCEEDS_MAX_SESSION), (43200, v.DURATION_EXCEEDS_CHAINING_CAP)],
)
def test_a_duration_over_an_hour_suggests_an_hour(max_session: int, code: str) -> None:
    diagnosis = verify(FakeRole(max_session=max_session), duration=7200)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.suggested_integration_patch) == (code, {"duration_seconds": 3600})


def test_another_refusal_is_sts_refused_with_stss_own_words() -> None:
    diagnosis = verify(FakeRole(max_session=1800))  # ValidationError, and an hour does not fit either
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.sts_code) == (v.STS_REFUSED, "ValidationError")


@pytest.mark.parametrize(
    ("role", "granted_with"),
    [
        (FakeRole(external_id=None), "runcreds-probe@deploy@web@write"),
        (FakeRole(external_id="*"), "runcreds-probe@deploy@web@write"),
        (FakeRole(trusts_no_external_id=True), "no external ID at all"),
    ],
)
def test_a_role_that_does_not_demand_the_tenants_external_id_is_not_enforced(role: FakeRole, granted_with: str) -> None:
    assert verify(role) is None
    diagnosis = bind(role)
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.sts_code) == (v.EXTERNAL_ID_NOT_ENFORCED, None)
    assert granted_with in diagnosis.message


def test_missing_session_actions_come_before_the_external_id_checks() -> None:
    # Order: the vend's own request is diagnosed first (here: TagSession missing, although the role would
    # also let in every external ID); the binding check is made only once the vend's request passes.
    role = FakeRole(external_id=None, tag_session=False)
    diagnosis = verify(role, others=("api",))
    assert diagnosis is not None and diagnosis.code == v.MISSING_TAG_SESSION
    assert len(role.calls) == 4  # the request, then without tags and SI, tags only, SI only: no other probe


def test_every_diagnosis_body_is_the_documented_model() -> None:
    roles = [FakeRole(tag_session=False), FakeRole(external_id="acme@deploy@web@read"), FakeRole(external_id="x")]
    for diagnosis in [verify(role) for role in roles] + [bind(FakeRole(external_id=None))]:
        assert diagnosis is not None
        DiagnosisBody.model_validate({"message": diagnosis.message, **diagnosis.body()})
