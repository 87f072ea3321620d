"""The phase's lifecycle and the record's leases in the store itself (runcreds.dal.credentials), in this
process: a finished phase refuses every claim and completion, finish() erases what was vended, and only
the holder of a record's token may give back, announce or take over what it holds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from runcreds.dal import credentials
from runcreds.dal.credentials import (
    CLAIM_LEASE_SECONDS,
    RECORD_RETENTION_SECONDS,
    Claim,
    Completion,
    CredentialsStore,
)
from runcreds.dal.keys import PHASE_ITEM
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.run import Phase, RunPhase
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, partition_items, record_items

INTEGRATION, OTHER = "01JD4Z8Q2M6V1T4B3X9N0C7K5R", "01JD4Z8Q2M6V1T4B3X9N0C7K5S"
NOW = 1_900_000_000  # the store's clock, when a test sets it
Clock = Callable[[float], None]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Sets the store's clock (only its) to `NOW + seconds`."""

    def at(seconds: float) -> None:
        monkeypatch.setattr(credentials, "time", SimpleNamespace(time=lambda: NOW + seconds))

    return at


def ready(run: RunPhase, integration_id: str = INTEGRATION) -> CredentialRecord:
    return CredentialRecord(
        **run.model_dump(), integration_id=integration_id, status=RecordStatus.READY, mode="broker",
        ciphertext=b"sealed", access_key_id="ASIAEXAMPLE", expires_at=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip


def item_of(stack: EmbeddedStack, tenant: Tenant, integration_id: str = INTEGRATION) -> dict[str, Any]:
    (item,) = [i for i in record_items(stack, tenant, "plan") if i["integration_id"]["S"] == integration_id]
    return item


def vended(store: CredentialsStore, run: RunPhase, integration_id: str = INTEGRATION, token: str = "writer") -> None:  # noqa: S107
    assert store.claim(run, integration_id, token) is Claim.CLAIMED
    assert store.complete(ready(run, integration_id), token, ttl=int(time.time()) + 3600) is Completion.WRITTEN


# ------------------------------------------------------------------ the phase finished
def test_a_claim_after_the_phase_finished_is_phase_finished_and_writes_nothing(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    assert store.finish(run) == 0
    assert store.claim(run, INTEGRATION, "late") is Claim.PHASE_FINISHED
    assert record_items(stack, tenant, "plan") == []


def test_a_completion_after_the_phase_finished_is_phase_finished_and_brings_nothing_back(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    # Given a claim made before the Finished, whose invocation then assumed the role
    assert store.claim(run, INTEGRATION, "mine") is Claim.CLAIMED
    assert store.finish(run) == 1
    # Then its completion is refused: the erased record stays erased, without credentials
    assert store.complete(ready(run), "mine", ttl=int(time.time()) + 3600) is Completion.PHASE_FINISHED
    item = item_of(stack, tenant)
    assert item["status"]["S"] == "finished"
    assert "ciphertext" not in item


def test_the_tombstone_is_the_phase_item_and_closes_the_phase(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, clock: Clock
) -> None:
    assert store.phase_is_open(run)
    assert store.read_phase(run).finished is False
    clock(0)
    store.finish(run)
    (tombstone,) = [i for i in partition_items(stack, tenant, "plan") if i["integration_id"]["S"] == PHASE_ITEM]
    assert tombstone["status"]["S"] == "finished"
    assert tombstone["finished_at"]["N"] == str(NOW)
    assert tombstone["ttl"]["N"] == str(NOW + RECORD_RETENTION_SECONDS)
    assert tombstone["run_id"]["S"] == tenant.run_id
    assert not store.phase_is_open(run)
    assert store.read_phase(run).finished is True
    other_phase = run.model_copy(update={"phase": Phase.APPLY})
    assert store.phase_is_open(other_phase)  # one phase's Finished closes that phase only


def test_finish_erases_every_record_once_and_counts_them(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, clock: Clock
) -> None:
    vended(store, run, INTEGRATION)
    vended(store, run, OTHER)
    clock(0)
    assert store.finish(run) == 2
    for integration_id in (INTEGRATION, OTHER):
        item = item_of(stack, tenant, integration_id)
        assert item["status"]["S"] == "finished"
        assert not {"ciphertext", "claim_token", "unannounced"} & set(item)
        assert item["ttl"]["N"] == str(NOW + RECORD_RETENTION_SECONDS)
    phase = store.read_phase(run)
    assert phase.finished is True
    assert sorted(r.integration_id for r in phase.records) == [INTEGRATION, OTHER]  # the tombstone is no record
    assert store.finish(run) == 0  # a second Finished (a duplicate delivery) erases nothing more


def test_a_finish_cut_short_is_completed_by_the_next_finished(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    # Given a Finished whose invocation erased the first record and then failed (no retry cures it)
    vended(store, run, INTEGRATION)
    vended(store, run, OTHER)
    with (
        stack.aws.faults.inject("dynamodb", "UpdateItem", "ValidationException", times=1, after=1),
        pytest.raises(Exception, match="ValidationException"),
    ):
        store.finish(run)
    assert item_of(stack, tenant, INTEGRATION)["status"]["S"] == "finished"
    assert "ciphertext" in item_of(stack, tenant, OTHER)
    # Then the next delivery passes over what is erased already and erases the rest
    assert store.finish(run) == 1
    item = item_of(stack, tenant, OTHER)
    assert item["status"]["S"] == "finished"
    assert "ciphertext" not in item


def test_a_phase_item_not_finished_leaves_the_phase_open(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    stack.client("dynamodb").put_item(
        TableName=store.table_name,
        Item={"run_key": {"S": f"{tenant.account}#{tenant.stack}#{tenant.run_id}#plan"},
              "integration_id": {"S": PHASE_ITEM}, "status": {"S": "open"}},
    )  # fmt: skip
    assert store.phase_is_open(run)
    assert store.read_phase(run).finished is False
    assert store.claim(run, INTEGRATION, "t") is Claim.CLAIMED


def test_the_phase_is_read_consistently(stack: EmbeddedStack, store: CredentialsStore, run: RunPhase) -> None:
    # A worker reading right after the vend's write must see it: an eventually consistent Query may not (the
    # embedded DynamoDB is always consistent, so the request itself is what is checked)
    queries: list[dict[str, Any]] = []

    def seen(request: Any) -> bool:  # records every Query, injects no fault
        queries.append(json.loads(request.body))
        return False

    with stack.aws.faults.inject("dynamodb", "Query", when=seen):
        vended(store, run)
        assert len(store.read_phase(run).records) == 1
    assert queries
    assert all(query.get("ConsistentRead") is True for query in queries)


def test_the_phase_item_is_read_consistently(stack: EmbeddedStack, store: CredentialsStore, run: RunPhase) -> None:
    # The refresh route and the worker's token ask phase_is_open right after a Finished may have closed the
    # phase: an eventually consistent GetItem may still say open (checked on the request, as above)
    reads: list[dict[str, Any]] = []

    def seen(request: Any) -> bool:  # records every GetItem, injects no fault
        reads.append(json.loads(request.body))
        return False

    store.finish(run)
    with stack.aws.faults.inject("dynamodb", "GetItem", when=seen):
        assert not store.phase_is_open(run)
    assert reads
    assert all(read.get("ConsistentRead") is True for read in reads)


# ------------------------------------------------------------------ the claim's lease and its values
def test_a_claim_and_its_completion_hold_a_lease_of_claim_lease_seconds(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, clock: Clock
) -> None:
    clock(0)
    assert store.claim(run, INTEGRATION, "mine") is Claim.CLAIMED
    item = item_of(stack, tenant)
    assert (item["status"]["S"], item["claim_token"]["S"]) == ("pending", "mine")
    assert item["claimed_until"]["N"] == str(NOW + CLAIM_LEASE_SECONDS)
    assert item["ttl"]["N"] == str(NOW + RECORD_RETENTION_SECONDS)
    assert CLAIM_LEASE_SECONDS == 60  # docs/reliability.md: "the pending claim keeps its 60 s lease"
    clock(CLAIM_LEASE_SECONDS)  # at the lease's last second it still holds
    assert store.claim(run, INTEGRATION, "other") is Claim.TAKEN
    clock(10)
    assert store.complete(ready(run), "mine", ttl=NOW + 3600) is Completion.WRITTEN
    item = item_of(stack, tenant)
    assert item["unannounced"]["BOOL"] is True
    assert item["claim_token"]["S"] == "mine"
    assert item["claimed_until"]["N"] == str(NOW + 10 + CLAIM_LEASE_SECONDS)
    assert item["ttl"]["N"] == str(NOW + 3600)


# ------------------------------------------------------------------ giving a claim back
def test_only_the_holder_gives_a_pending_claim_back(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    assert store.claim(run, INTEGRATION, "mine") is Claim.CLAIMED
    store.release(run, INTEGRATION, "someone else")
    assert item_of(stack, tenant)["claim_token"]["S"] == "mine"
    store.release(run, INTEGRATION, "mine")
    assert record_items(stack, tenant, "plan") == []
    assert store.claim(run, INTEGRATION, "retry") is Claim.CLAIMED  # at once, not after the lease


def test_a_written_record_is_never_given_back(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    vended(store, run, token="mine")
    store.release(run, INTEGRATION, "mine")  # its token still on it until announced: not pending
    assert item_of(stack, tenant)["status"]["S"] == "ready"


# ------------------------------------------------------------------ announcements
def test_an_unannounced_record_is_taken_over_only_after_its_writers_lease(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, clock: Clock
) -> None:
    clock(0)
    assert store.claim(run, INTEGRATION, "writer") is Claim.CLAIMED
    assert store.take_over_announcement(run, INTEGRATION, "retry") is None  # a claim, not a record yet
    assert store.complete(ready(run), "writer", ttl=NOW + 3600) is Completion.WRITTEN
    clock(CLAIM_LEASE_SECONDS)
    assert store.take_over_announcement(run, INTEGRATION, "retry") is None  # the writer may still announce
    clock(CLAIM_LEASE_SECONDS + 1)
    taken = store.take_over_announcement(run, INTEGRATION, "retry")
    assert taken is not None and taken.status is RecordStatus.READY and taken.ciphertext == b"sealed"
    item = item_of(stack, tenant)
    assert item["claim_token"]["S"] == "retry"
    assert item["claimed_until"]["N"] == str(NOW + 2 * CLAIM_LEASE_SECONDS + 1)
    # The stalled writer can no longer mark it: only the taker-over can
    store.mark_announced(run, INTEGRATION, "writer")
    assert item_of(stack, tenant)["unannounced"]["BOOL"] is True
    store.mark_announced(run, INTEGRATION, "retry")
    assert not {"unannounced", "claim_token", "claimed_until"} & set(item_of(stack, tenant))
    clock(10 * CLAIM_LEASE_SECONDS)
    assert store.take_over_announcement(run, INTEGRATION, "third") is None  # announced: never again


def test_a_released_announcement_is_taken_over_at_once_but_only_by_its_holders_release(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase, clock: Clock
) -> None:
    clock(0)
    vended(store, run, token="writer")
    store.release_announcement(run, INTEGRATION, "someone else")
    assert store.take_over_announcement(run, INTEGRATION, "retry") is None
    store.release_announcement(run, INTEGRATION, "writer")
    assert item_of(stack, tenant)["claimed_until"]["N"] == "0"
    assert store.take_over_announcement(run, INTEGRATION, "retry") is not None


def test_what_a_completion_also_puts_is_written_with_it_or_not_at_all(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    def mapping(name: str) -> dict[str, Any]:  # another item of the partition, as the audit mappings are
        item = {"run_key": f"{tenant.account}#{tenant.stack}#{tenant.run_id}#plan", "integration_id": name}
        return {"TableName": store.table_name, "Item": {k: {"S": v} for k, v in item.items()}}

    assert store.claim(run, INTEGRATION, "mine") is Claim.CLAIMED
    assert store.complete(ready(run), "theirs", ttl=NOW, also_put=[mapping("lost")]) is Completion.CLAIM_LOST
    assert store.complete(ready(run), "mine", ttl=NOW, also_put=[mapping("won")]) is Completion.WRITTEN
    names = {i["integration_id"]["S"] for i in record_items(stack, tenant, "plan")}
    assert names == {INTEGRATION, "won"}


def test_a_claim_released_while_finish_erases_does_not_stop_it_erasing_the_others(
    stack: EmbeddedStack, tenant: Tenant, store: CredentialsStore, run: RunPhase
) -> None:
    # Given a pending claim (sorted first) and a ready record; the claim is released as finish() erases it
    assert store.claim(run, INTEGRATION, "pending") is Claim.CLAIMED
    vended(store, run, OTHER)
    released: list[bool] = []

    def release_first(**_kwargs: object) -> None:
        if not released:
            released.append(True)
            store.release(run, INTEGRATION, "pending")

    store.client.meta.events.register("before-call.dynamodb.UpdateItem", release_first)
    try:
        assert store.finish(run) == 1
    finally:
        store.client.meta.events.unregister("before-call.dynamodb.UpdateItem", release_first)
    # Then the released claim stays gone and the ready record is erased all the same
    (item,) = record_items(stack, tenant, "plan")
    assert (item["integration_id"]["S"], item["status"]["S"]) == (OTHER, "finished")
    assert "ciphertext" not in item
