"""Credential records and the run phase's state, in one partition per run phase (`account#stack#run#phase`).

- The *phase item* (sort key PHASE_ITEM, which no integration ID can equal) is the phase's lifecycle:
  absent while the phase is open, `finished` once its Finished was seen. It is final: every claim,
  completion and refresh is conditional on it in the same TransactWriteItems (`phase_open_check`).
- One *record* per integration (sort key: the integration ID). Its first write is a *claim* (status
  pending, a token and a lease): only the invocation that holds it may assume the role and write the
  record, so duplicate deliveries of one event assume the role once. A claim whose lease ran out (its
  invocation died) may be taken over by a retry.
- A record is written `unannounced`, still holding its writer's token and lease, until its Ready or Failed
  event is published: a retry re-announces a record whose writer failed (or died) before announcing it.
- Every update is conditional on the item existing: no write here creates an item of keys only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runcreds.dal.items import TableStore, from_item, to_item
from runcreds.dal.keys import PHASE_ITEM, phase_key, record_key
from runcreds.exceptions import ConditionFailedError
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.run import RunPhase

CLAIM_LEASE_SECONDS = 60
# Records that carry no credentials (failures, worker instructions, tombstones) outlive the phase
# by a day so that late readers get a clear answer; DynamoDB TTL removes them afterwards.
RECORD_RETENTION_SECONDS = 86400
PHASE_FINISHED = "finished"


class Claim(StrEnum):
    CLAIMED = "claimed"  # this invocation owns the record now
    TAKEN = "taken"  # another invocation owns it, or it is already written
    PHASE_FINISHED = "phase_finished"  # the phase is over: nothing may be vended


class Completion(StrEnum):
    WRITTEN = "written"
    CLAIM_LOST = "claim_lost"  # our lease ran out and another invocation took the record over
    PHASE_FINISHED = "phase_finished"


@dataclass
class PhaseRecords:
    """What one strongly consistent query of the phase's partition says (the worker's one call)."""

    finished: bool
    records: list[CredentialRecord] = field(default_factory=list)


class CredentialsStore(TableStore):
    def _key(self, run: RunPhase, integration_id: str) -> dict[str, Any]:
        return to_item(record_key(run, integration_id))

    # ------------------------------------------------------------------ the phase's state
    def phase_open_check(self, run: RunPhase) -> dict[str, Any]:
        """The TransactWriteItems element that holds a write to `run` still being open: put it in the
        same transaction as any claim, completion or refresh of the phase's credentials."""
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": self._key(run, PHASE_ITEM),
                "ConditionExpression": "attribute_not_exists(#status) OR #status <> :finished",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": to_item({":finished": PHASE_FINISHED}),
            }
        }

    def phase_is_open(self, run: RunPhase) -> bool:
        """Whether the phase's Finished has not been seen (a strongly consistent read). To act on the
        answer, make the write conditional with `phase_open_check`: this alone is a snapshot."""
        item = self.client.get_item(TableName=self.table_name, Key=self._key(run, PHASE_ITEM), ConsistentRead=True).get(
            "Item"
        )
        return item is None or from_item(item).get("status") != PHASE_FINISHED

    def _transact(self, items: list[dict[str, Any]]) -> list[bool] | None:
        """Writes `items` (the phase check first); None when written, else which conditions failed."""
        try:
            self.transact_write_items(items)
        except ConditionFailedError as failure:  # conditions only (also throttled: TransientAwsError)
            return [code == failure.CONDITION for code in failure.reasons]
        return None

    # ------------------------------------------------------------------ claims and records
    def claim(self, run: RunPhase, integration_id: str, token: str) -> Claim:
        now = int(time.time())
        item = {
            "run_key": phase_key(run),
            "integration_id": integration_id,
            **run.model_dump(mode="json"),
            "status": RecordStatus.PENDING.value,
            "claim_token": token,
            "claimed_until": now + CLAIM_LEASE_SECONDS,
            "ttl": now + RECORD_RETENTION_SECONDS,
        }
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(run_key) OR (#status = :pending AND claimed_until < :now)",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": to_item({":pending": RecordStatus.PENDING.value, ":now": now}),
            }
        }
        failed = self._transact([self.phase_open_check(run), put])
        if failed is None:
            return Claim.CLAIMED
        return Claim.PHASE_FINISHED if failed[0] else Claim.TAKEN

    def complete(
        self, record: CredentialRecord, token: str, ttl: int, also_put: Sequence[dict[str, Any]] = ()
    ) -> Completion:
        """Replace our claim with the finished record, unless the phase finished or our lease was taken
        over. `also_put` (TransactWriteItems `Put`s, e.g. the audit session mappings) are written in the
        same transaction, all or nothing. The record keeps our token and a fresh lease until announced."""
        item = self._item(record, ttl)
        item.update(
            to_item(
                {"unannounced": True, "claim_token": token, "claimed_until": int(time.time()) + CLAIM_LEASE_SECONDS}
            )
        )
        put = {
            "TableName": self.table_name,
            "Item": item,
            "ConditionExpression": "claim_token = :token",
            "ExpressionAttributeValues": to_item({":token": token}),
        }
        items: list[Any] = [self.phase_open_check(record.run), {"Put": put}, *({"Put": p} for p in also_put)]
        failed = self._transact(items)
        if failed is None:
            return Completion.WRITTEN
        return Completion.PHASE_FINISHED if failed[0] else Completion.CLAIM_LOST

    def _item(self, record: CredentialRecord, ttl: int) -> dict[str, Any]:
        values = record.model_dump(mode="json", exclude={"ciphertext", "assume_role"})
        values.update(run_key=phase_key(record.run), ttl=ttl)
        if record.ciphertext is not None:
            values["ciphertext"] = record.ciphertext
        if record.assume_role is not None:
            values["assume_role"] = record.assume_role.model_dump(mode="json")
        return to_item(values)

    # ------------------------------------------------------------------ refresh (logic/refresh.py)
    def get(self, run: RunPhase, integration_id: str) -> CredentialRecord | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=self._key(run, integration_id), ConsistentRead=True
        )
        return CredentialRecord.model_validate(from_item(response["Item"])) if "Item" in response else None

    def claim_refresh(
        self, run: RunPhase, integration_id: str, token: str, lease_seconds: int, fresh_since: int
    ) -> CredentialRecord | None:
        """Take the right to refresh a ready record: only when no other refresh holds a live lease and the
        current generation was not issued since `fresh_since` (epoch seconds). The record as claimed, or
        None when the condition failed (the caller reads the record to see why)."""
        now = int(time.time())
        try:
            response = self.update_item(
                TableName=self.table_name,
                Key=self._key(run, integration_id),
                UpdateExpression="SET refresh_token = :token, refresh_until = :until",
                ConditionExpression=(
                    "#status = :ready AND (attribute_not_exists(refresh_until) OR refresh_until < :now)"
                    " AND (attribute_not_exists(issued_epoch) OR issued_epoch < :fresh)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item(
                    {
                        ":token": token,
                        ":until": now + lease_seconds,
                        ":ready": RecordStatus.READY.value,
                        ":now": now,
                        ":fresh": fresh_since,
                    }
                ),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailedError:
            return None
        return CredentialRecord.model_validate(from_item(response["Attributes"]))

    def release_refresh(self, run: RunPhase, integration_id: str, token: str) -> None:
        with suppress(ConditionFailedError):
            self.update_item(
                TableName=self.table_name,
                Key=self._key(run, integration_id),
                UpdateExpression="REMOVE refresh_token, refresh_until",
                ConditionExpression="refresh_token = :token",
                ExpressionAttributeValues=to_item({":token": token}),
            )

    def replace_refreshed(
        self,
        record: CredentialRecord,
        token: str,
        previous_generation: int,
        ttl: int,
        condition_checks: Sequence[dict[str, Any]] = (),
        also_put: Sequence[dict[str, Any]] = (),
    ) -> int | None:
        """Write the next generation, only while our refresh claim holds, the generation is the one we
        claimed and the phase is still ready (a Finished erases the record: a late refresh must not bring
        it back). `condition_checks` (ConditionCheck items) and `also_put` go in the same transaction.
        It is conditional on the phase being open too (`phase_open_check`). None when written; else the index
        of the first item whose condition failed: 0 the phase finished, 1 the record's own, then the
        condition checks in their order."""
        assert record.issued_at is not None
        item = self._item(record, ttl)
        item.update(to_item({"issued_epoch": int(record.issued_at.timestamp())}))
        put = {
            "TableName": self.table_name,
            "Item": item,
            "ConditionExpression": (
                "refresh_token = :token AND #status = :ready"
                " AND (generation = :generation OR attribute_not_exists(generation))"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": to_item(
                {":token": token, ":ready": RecordStatus.READY.value, ":generation": previous_generation}
            ),
        }
        items: list[Any] = [
            self.phase_open_check(record.run),
            {"Put": put},
            *({"ConditionCheck": c} for c in condition_checks),
            *({"Put": p} for p in also_put),
        ]
        try:
            self.transact_write_items(items)
        except ConditionFailedError as failure:
            return failure.failed[0]
        return None

    def release(self, run: RunPhase, integration_id: str, token: str) -> None:
        """Give a claim back after a transient failure, so that the retry need not wait for the lease."""
        with suppress(ConditionFailedError):
            self.delete_item(
                TableName=self.table_name,
                Key=self._key(run, integration_id),
                ConditionExpression="claim_token = :token AND #status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":token": token, ":pending": RecordStatus.PENDING.value}),
            )

    # ------------------------------------------------------------------ announcements
    def take_over_announcement(self, run: RunPhase, integration_id: str, token: str) -> CredentialRecord | None:
        """The record, now ours to announce, when it is unannounced and its writer's lease ran out (the
        writer failed to announce it, or died); None otherwise (announced, or its writer still at it)."""
        now = int(time.time())
        try:
            response = self.update_item(
                TableName=self.table_name,
                Key=self._key(run, integration_id),
                UpdateExpression="SET claim_token = :token, claimed_until = :until",
                ConditionExpression="attribute_exists(unannounced) AND claimed_until < :now",
                ExpressionAttributeValues=to_item({":token": token, ":until": now + CLAIM_LEASE_SECONDS, ":now": now}),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailedError:
            return None
        return CredentialRecord.model_validate(from_item(response["Attributes"]))

    def mark_announced(self, run: RunPhase, integration_id: str, token: str) -> None:
        with suppress(ConditionFailedError):  # finished meanwhile, or taken over: nothing to mark
            self.update_item(
                TableName=self.table_name,
                Key=self._key(run, integration_id),
                UpdateExpression="REMOVE unannounced, claim_token, claimed_until",
                ConditionExpression="claim_token = :token",
                ExpressionAttributeValues=to_item({":token": token}),
            )

    def release_announcement(self, run: RunPhase, integration_id: str, token: str) -> None:
        """Publishing failed: let the retry announce the record at once instead of after the lease."""
        with suppress(ConditionFailedError):
            self.update_item(
                TableName=self.table_name,
                Key=self._key(run, integration_id),
                UpdateExpression="SET claimed_until = :zero",
                ConditionExpression="claim_token = :token",
                ExpressionAttributeValues=to_item({":token": token, ":zero": 0}),
            )

    # ------------------------------------------------------------------ reading and finishing
    def read_phase(self, run: RunPhase) -> PhaseRecords:
        phase = PhaseRecords(finished=False)
        for item in self.query("run_key", phase_key(run), ConsistentRead=True):
            if item["integration_id"] == PHASE_ITEM:
                phase.finished = item.get("status") == PHASE_FINISHED
            else:
                phase.records.append(CredentialRecord.model_validate(item))
        return phase

    def records(self, run: RunPhase) -> list[CredentialRecord]:
        return self.read_phase(run).records

    def finish(self, run: RunPhase) -> int:
        """Close the phase for good, then erase its credentials. The tombstone comes first, even when
        nothing was vended: from then on no claim or completion can succeed (they check it), so the
        records the query then finds are all that will ever hold credentials for the phase."""
        now = int(time.time())
        self.put_item(
            TableName=self.table_name,
            Item=to_item(
                {
                    "run_key": phase_key(run),
                    "integration_id": PHASE_ITEM,
                    **run.model_dump(mode="json"),
                    "status": PHASE_FINISHED,
                    "finished_at": now,
                    "ttl": now + RECORD_RETENTION_SECONDS,
                }
            ),
        )
        erased = 0
        for record in self.records(run):
            if record.status is RecordStatus.FINISHED:
                continue
            try:
                self.update_item(
                    TableName=self.table_name,
                    Key=self._key(run, record.integration_id),
                    UpdateExpression=(
                        "SET #status = :finished, #ttl = :ttl REMOVE ciphertext, claim_token, unannounced"
                    ),
                    # A claim released (deleted) since the query stays deleted: no item of keys only.
                    ConditionExpression="attribute_exists(run_key)",
                    ExpressionAttributeNames={"#status": "status", "#ttl": "ttl"},
                    ExpressionAttributeValues=to_item(
                        {":finished": RecordStatus.FINISHED.value, ":ttl": now + RECORD_RETENTION_SECONDS}
                    ),
                )
            except ConditionFailedError:
                continue
            erased += 1
        return erased
