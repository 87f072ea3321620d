"""External ID, session name, source identity and session tags (docs/interface.md §3)."""

from __future__ import annotations

import pytest

from runcreds.models.run import Access, Phase, RunPhase
from runcreds.run_scope import (
    SESSION_NAME_RULE,
    external_id_for,
    session_name_for,
    session_tags_for,
    tag_value,
)
from runcreds_dev.strict_sts import EXTERNAL_ID


def test_external_id_follows_the_spacelift_format() -> None:
    assert external_id_for("acme", "01JD", "networking-prod", Access.READ) == "acme@01JD@networking-prod@read"
    assert external_id_for("acme", "01JD", "networking-prod", Access.WRITE).endswith("@write")


@pytest.mark.parametrize(
    ("phase", "access"),
    [("plan", "read"), ("drift", "read"), ("apply", "write"), ("destroy", "write"), ("task", "write")],
)
def test_each_phase_maps_to_its_access(phase: str, access: str) -> None:
    assert Phase(phase).access.value == access


def test_a_run_id_sts_accepts_is_the_session_name() -> None:
    assert session_name_for("01DSJ63P40BAZY4VW8BXXG7M4K") == "01DSJ63P40BAZY4VW8BXXG7M4K"
    assert session_name_for("a,b=c+d.e-f_g") == "a,b=c+d.e-f_g"


def test_a_long_run_id_gets_a_deterministic_traceable_name_sts_accepts() -> None:
    run_id = "run-" + "x" * 120
    name = session_name_for(run_id)
    assert len(name) == 64
    assert SESSION_NAME_RULE.match(name)
    assert name.startswith(run_id[:40])
    assert name == session_name_for(run_id)


def test_long_run_ids_sharing_a_prefix_get_different_names() -> None:
    prefix = "p" * 70
    assert session_name_for(prefix + "a") != session_name_for(prefix + "b")


def test_session_tags_name_the_run_and_survive_a_comma() -> None:
    run = RunPhase(account="acme", stack="net", run_id="run,1", phase=Phase.APPLY)
    tags = {t["Key"]: t["Value"] for t in session_tags_for(run, "01JD")}
    assert tags == {
        "runcreds:account": "acme",
        "runcreds:stack": "net",
        "runcreds:run": "run:1",
        "runcreds:phase": "apply",
        "runcreds:integration": "01JD",
    }


def test_every_valid_run_yields_an_external_id_sts_accepts() -> None:
    external_id = external_id_for("a" * 63, "01JD0000000000000000000000", "s" * 63, Access.WRITE)
    assert EXTERNAL_ID.match(external_id)


def test_tag_values_outside_the_alphabet_are_refused() -> None:
    with pytest.raises(ValueError, match="session tag"):
        tag_value("a\nb")
