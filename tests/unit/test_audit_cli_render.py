"""`runcreds audit` shows what CloudTrail recorded without letting it drive the auditor's terminal."""

from __future__ import annotations

import pytest

from runcreds_cli.audit import render

HOSTILE = [
    "\x1b[2J\x1b[Hall clear",  # ESC sequences: clear the screen, move the cursor
    "DeleteBucket\rListBuckets",  # carriage return: overwrite the line
    "x\x07\x08\x00y",  # bell, backspace, NUL
    "\x9b31m",  # C1 control sequence introducer
    "evil\u202egnp.exe",  # right-to-left override
    "line\u2028break",  # Unicode line separator
]


@pytest.mark.parametrize("text", HOSTILE)
def test_control_characters_in_any_field_are_shown_escaped(text: str) -> None:
    # Given an event whose caller-controlled fields carry control characters
    event = {
        "event_time": "2026-01-01T00:00:00Z",
        "event_source": f"s3.amazonaws.com{text}",
        "event_name": text,
        "aws_region": text,
        "resource": text,
        "error_code": text,
        "read_only": False,
    }

    # When the timeline is rendered for a terminal
    out = render(f"run{text}", [event])

    # Then no control character reaches it (only the layout's own newlines), and each is visible as an escape
    assert all(c == "\n" or (c.isprintable() and c not in "\u202e\u2028") for c in out), repr(out)
    assert "\\x1b" in out or "\\x0d" in out or "\\x07" in out or "\\x9b" in out or "\\u202e" in out or "\\u2028" in out


def test_a_backslash_in_the_text_cannot_pass_for_an_escape() -> None:
    # Given a field that spells an escape itself
    out = render("r", [{"event_name": "\\x1b[2J", "event_time": "t"}])

    # Then it is shown doubled, unlike a real control character
    assert "\\\\x1b[2J" in out
