"""A worker-mode OIDC integration's token as the refresh route answers it: the exchange's parameters are
the vend's AssumeRole spec, and the token never shows in a repr (a log line, an exception)."""

from __future__ import annotations

from datetime import UTC, datetime

from runcreds.logic.worker_token import WorkerToken
from runcreds.models.run import Phase, RunPhase
from runcreds.run_scope import RunScope

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"  # a made-up JWT


def granted() -> WorkerToken:
    run = RunPhase(account="acme", stack="networking-prod", run_id="01DSJ63P40BAZY4VW8BXXG7M4K", phase=Phase.APPLY)
    scope = RunScope(run, "01JD0000000000000000000000")
    spec = scope.assume_role_spec("arn:aws:iam::123456789012:role/deploy", 7200, "eu-west-1")
    return WorkerToken("01JD0000000000000000000000", TOKEN, datetime(2026, 12, 4, 21, 0, tzinfo=UTC), spec)


def test_the_answer_carries_the_token_and_the_specs_exchange_parameters() -> None:
    # Given a minted token, when the route answers it
    token = granted()
    answer = token.answer()

    # Then the worker gets the token and exactly the AssumeRoleWithWebIdentity parameters of the vend's spec
    assert answer.model_dump() == {
        "integration_id": "01JD0000000000000000000000",
        "token": TOKEN,
        "expires_at": datetime(2026, 12, 4, 21, 0, tzinfo=UTC),
        "role_arn": "arn:aws:iam::123456789012:role/deploy",
        "session_name": token.spec.session_name,
        "duration_seconds": 7200,
        "region": "eu-west-1",
    }
    assert token.spec.session_name == "01DSJ63P40BAZY4VW8BXXG7M4K"


def test_neither_the_token_nor_its_answer_shows_the_token_in_a_repr() -> None:
    token = granted()
    assert TOKEN not in repr(token)
    assert TOKEN not in repr(token.answer())
    assert TOKEN not in str(token.answer())
