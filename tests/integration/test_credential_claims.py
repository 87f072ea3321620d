"""The claim and its completion (runcreds.dal.credentials): a claim's lease keeps every other invocation
out until it runs out, and a completion is written only by the invocation that holds the claim."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from runcreds.dal import credentials
from runcreds.dal.credentials import CLAIM_LEASE_SECONDS, Claim, Completion, CredentialsStore
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.run import RunPhase
from runcreds.run_scope import RunScope
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, record_items

INTEGRATION = "01JD4Z8Q2M6V1T4B3X9N0C7K5R"
Clock = Callable[[float], None]


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Moves the store's clock (only its: the claim's `now`) `seconds` past the real time."""

    def move(seconds: float) -> None:
        monkeypatch.setattr(credentials, "time", SimpleNamespace(time=lambda: time.time() + seconds))

    return move


def ready(run: RunPhase) -> CredentialRecord:
    return CredentialRecord(
        account=run.account, stack=run.stack, run_id=run.run_id, phase=run.phase, integration_id=INTEGRATION,
        status=RecordStatus.READY, mode="broker", ciphertext=b"sealed", access_key_id="ASIAEXAMPLE",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip


def claim_token_of(stack: EmbeddedStack, tenant: Tenant) -> str:
    (item,) = record_items(stack, tenant, "plan")
    return str(item["claim_token"]["S"])


def test_a_claim_within_its_lease_is_refused_to_every_other_invocation(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, later: Clock
) -> None:
    assert store.claim(run, INTEGRATION, "first") is Claim.CLAIMED
    assert store.claim(run, INTEGRATION, "second") is Claim.TAKEN
    later(CLAIM_LEASE_SECONDS - 2)  # the lease is about to run out, not yet
    assert store.claim(run, INTEGRATION, "second") is Claim.TAKEN
    assert claim_token_of(stack, tenant) == "first"


def test_a_claim_whose_lease_ran_out_is_taken_over(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, later: Clock
) -> None:
    # Given a claim whose invocation died
    assert store.claim(run, INTEGRATION, "first") is Claim.CLAIMED
    # When a retry comes after its lease
    later(CLAIM_LEASE_SECONDS + 2)
    # Then it takes the record over, with a lease of its own
    assert store.claim(run, INTEGRATION, "second") is Claim.CLAIMED
    assert claim_token_of(stack, tenant) == "second"
    assert store.claim(run, INTEGRATION, "third") is Claim.TAKEN


def test_a_written_record_is_never_claimed_again_even_after_its_lease(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, later: Clock
) -> None:
    assert store.claim(run, INTEGRATION, "first") is Claim.CLAIMED
    assert store.complete(ready(run), "first", ttl=int(time.time()) + 3600) is Completion.WRITTEN
    later(CLAIM_LEASE_SECONDS + 2)
    assert store.claim(run, INTEGRATION, "second") is Claim.TAKEN
    (item,) = record_items(stack, tenant, "plan")
    assert item["status"]["S"] == "ready"


def test_a_completion_with_another_claims_token_is_claim_lost(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    # Given a claim held by another invocation
    assert store.claim(run, INTEGRATION, "theirs") is Claim.CLAIMED
    # When an invocation that does not hold it completes the record
    assert store.complete(ready(run), "mine", ttl=int(time.time()) + 3600) is Completion.CLAIM_LOST
    # Then nothing was written: the claim is still pending, and still theirs
    (item,) = record_items(stack, tenant, "plan")
    assert (item["status"]["S"], item["claim_token"]["S"]) == ("pending", "theirs")
    assert "ciphertext" not in item


def test_a_stalled_invocation_whose_claim_was_taken_over_cannot_complete(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, later: Clock
) -> None:
    # Given a claim taken over after its lease ran out
    assert store.claim(run, INTEGRATION, "stalled") is Claim.CLAIMED
    later(CLAIM_LEASE_SECONDS + 2)
    assert store.claim(run, INTEGRATION, "retry") is Claim.CLAIMED
    # Then the stalled invocation's completion is refused, and the retry's is written
    assert store.complete(ready(run), "stalled", ttl=int(time.time()) + 3600) is Completion.CLAIM_LOST
    assert claim_token_of(stack, tenant) == "retry"
    assert store.complete(ready(run), "retry", ttl=int(time.time()) + 3600) is Completion.WRITTEN
    (item,) = record_items(stack, tenant, "plan")
    assert (item["status"]["S"], item["claim_token"]["S"]) == ("ready", "retry")


def test_a_completion_of_a_claim_never_made_is_claim_lost(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    assert store.complete(ready(run), "nobody", ttl=int(time.time()) + 3600) is Completion.CLAIM_LOST
    assert record_items(stack, tenant, "plan") == []


def test_a_completed_record_reads_back_as_written_with_its_ciphertext_and_assume_role(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    # What the worker decrypts and the refresh route re-assumes: stored binary and as a map, read back whole
    spec = RunScope(run, INTEGRATION).assume_role_spec(f"arn:aws:iam::{run.account}:role/deploy", 3600, "eu-west-1")
    record = ready(run).model_copy(update={"assume_role": spec})
    assert store.claim(run, INTEGRATION, "writer") is Claim.CLAIMED
    assert store.complete(record, "writer", ttl=int(time.time()) + 3600) is Completion.WRITTEN
    (item,) = record_items(stack, tenant, "plan")
    assert item["ciphertext"] == {"B": b"sealed"}
    assert item["assume_role"]["M"]["role_arn"] == {"S": spec.role_arn}
    (stored,) = store.records(run)
    assert (stored.ciphertext, stored.assume_role, stored.access_key_id) == (b"sealed", spec, "ASIAEXAMPLE")
