"""RunScope: the external ID, session name, source identity, session tags, encryption context and AssumeRole
request of one integration in one run phase."""

from __future__ import annotations

import hashlib

import pytest

from runcreds.models.run import Access, Phase, RunPhase
from runcreds.run_scope import SESSION_NAME_RULE, SESSION_TAG_KEYS, VERIFICATION_RUN, RunScope, tag_value
from runcreds_dev.sts_rules import EXTERNAL_ID

INTEGRATION = "01JD0000000000000000000000"
ROLE = "arn:aws:iam::123456789012:role/deploy"


def scope(run_id: str = "01DSJ63P40BAZY4VW8BXXG7M4K", phase: str = "apply", **names: str) -> RunScope:
    run = RunPhase(
        account=names.get("account", "acme"),
        stack=names.get("stack", "networking-prod"),
        run_id=run_id,
        phase=Phase(phase),
    )
    return RunScope(run, names.get("integration_id", INTEGRATION))


@pytest.mark.parametrize(("phase", "access"), [("plan", "read"), ("drift", "read"), ("apply", "write")])
def test_the_external_id_follows_the_spacelift_format_with_the_phases_access(phase: str, access: str) -> None:
    assert scope(phase=phase).external_id == f"acme@{INTEGRATION}@networking-prod@{access}"


@pytest.mark.parametrize(
    ("phase", "access"),
    [("plan", "read"), ("drift", "read"), ("apply", "write"), ("destroy", "write"), ("task", "write")],
)
def test_each_phase_maps_to_its_access(phase: str, access: str) -> None:
    assert scope(phase=phase).access.value == access


def test_every_valid_run_yields_an_external_id_sts_accepts() -> None:
    assert EXTERNAL_ID.match(scope(account="a" * 63, stack="s" * 63).external_id)


@pytest.mark.parametrize("run_id", ["01DSJ63P40BAZY4VW8BXXG7M4K", "a,b=c+d.e-f_g", "x" * 64])
def test_a_run_id_sts_accepts_is_the_session_name_and_the_source_identity(run_id: str) -> None:
    named = scope(run_id)
    assert (named.session_name, named.source_identity) == (run_id, run_id)


def test_a_long_run_id_gets_its_prefix_and_a_hash_of_the_whole_id() -> None:
    run_id = "run-" + "x" * 120
    name = scope(run_id).session_name
    assert name == f"{run_id[:40]}--{hashlib.sha256(run_id.encode()).hexdigest()[:22]}"
    assert len(name) == 64
    assert SESSION_NAME_RULE.match(name)
    assert scope(run_id).source_identity == name


def test_long_run_ids_sharing_a_prefix_get_different_names() -> None:
    prefix = "p" * 70
    assert scope(prefix + "a").session_name != scope(prefix + "b").session_name


def test_the_session_name_is_the_run_ids_alone() -> None:
    assert scope(phase="plan", account="other", integration_id="X").session_name == scope().session_name


def test_session_tags_name_the_run_and_carry_a_comma_as_a_colon() -> None:
    tags = scope("run,1").session_tags
    assert [t["Key"] for t in tags] == list(SESSION_TAG_KEYS)
    assert {t["Key"]: t["Value"] for t in tags} == {
        "runcreds:account": "acme",
        "runcreds:stack": "networking-prod",
        "runcreds:run": "run:1",
        "runcreds:phase": "apply",
        "runcreds:integration": INTEGRATION,
    }


def test_the_encryption_context_holds_the_run_id_as_it_is() -> None:
    assert scope("run,1", phase="destroy").encryption_context == {
        "runcreds:account": "acme",
        "runcreds:stack": "networking-prod",
        "runcreds:run": "run,1",
        "runcreds:phase": "destroy",
        "runcreds:integration": INTEGRATION,
    }


def test_another_phase_or_integration_has_another_encryption_context() -> None:
    assert scope(phase="plan").encryption_context != scope(phase="apply").encryption_context
    assert scope(integration_id="OTHER").encryption_context != scope().encryption_context


def test_tag_values_outside_the_alphabet_are_refused() -> None:
    with pytest.raises(ValueError, match="session tag"):
        tag_value("a\nb")


def test_the_assume_role_spec_carries_the_scopes_names() -> None:
    named = scope("run,1")
    spec = named.assume_role_spec(ROLE, 1800, "eu-west-1")
    assert (spec.role_arn, spec.duration_seconds, spec.region) == (ROLE, 1800, "eu-west-1")
    assert (spec.external_id, spec.session_name, spec.source_identity) == (
        named.external_id,
        named.session_name,
        named.session_name,
    )
    assert spec.tags == named.session_tags
    assert spec.transitive_tag_keys == list(SESSION_TAG_KEYS)


@pytest.mark.parametrize(("access", "phase"), [(Access.READ, "plan"), (Access.WRITE, "apply")])
def test_verification_presents_the_run_a_vend_of_the_access_would(access: Access, phase: str) -> None:
    verifying = RunScope.verification("acme", "networking-prod", INTEGRATION, access)
    assert verifying == scope(VERIFICATION_RUN, phase)
    assert verifying.external_id.endswith(f"@{access.value}")
