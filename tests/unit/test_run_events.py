"""Run-phase events are validated before anything else happens (docs/interface.md §1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runcreds.exceptions import InvalidRunEventError
from runcreds.models.events import parse_run_event
from tests.support import EVENTS, load_event

INVALID = sorted(p.name for p in (EVENTS / "invalid").glob("*.json"))


def test_the_sample_events_are_valid() -> None:
    for name in (
        "run_phase_started_plan.json",
        "run_phase_started_apply.json",
        "run_phase_finished_apply.json",
    ):
        event = parse_run_event(load_event(name))
        assert event.detail.account == "acme"


@pytest.mark.parametrize("name", INVALID)
def test_each_invalid_sample_is_refused_with_a_clear_reason(name: str) -> None:
    with pytest.raises(InvalidRunEventError, match=r"invalid run-phase event: .+"):
        parse_run_event(load_event(f"invalid/{name}"))


def test_the_reason_names_the_offending_field() -> None:
    with pytest.raises(InvalidRunEventError, match=r"detail\.stack"):
        parse_run_event(load_event("invalid/at_in_stack.json"))


def test_there_is_an_invalid_sample_for_every_rule() -> None:
    expected = {
        "bad_account_slug.json",
        "at_in_stack.json",
        "unknown_phase.json",
        "run_id_200_chars.json",
        "missing_run_id.json",
    }
    assert expected <= set(INVALID), Path("events/invalid")
