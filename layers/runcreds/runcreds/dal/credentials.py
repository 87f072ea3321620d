"""Credential records: one item per (run phase, integration), keyed `account#stack#run#phase`.

The first write for a key is a *claim* (status pending, a token and a lease): only the invocation that
holds it may assume the role and write the record, so duplicate deliveries of one event assume the
role once. A claim whose lease ran out (its invocation died) may be taken over by a retry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from runcreds.dal.items import TableStore, from_item, to_item
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.events import RunPhase

CLAIM_LEASE_SECONDS = 60
# Records that carry no credentials (failures, worker instructions, tombstones) outlive the phase
# by a day so that late readers get a clear answer; DynamoDB TTL removes them afterwards.
RECORD_RETENTION_SECONDS = 86400


def _conditional_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class CredentialsStore(TableStore):
    def _key(self, run: RunPhase, integration_id: str) -> dict[str, Any]:
        return to_item({"run_key": run.run_key, "integration_id": integration_id})

    def claim(self, run: RunPhase, integration_id: str, token: str) -> bool:
        """True when this invocation now owns the record; False when another one does or did."""
        now = int(time.time())
        item = {
            "run_key": run.run_key,
            "integration_id": integration_id,
            **run.model_dump(mode="json"),
            "status": RecordStatus.PENDING.value,
            "claim_token": token,
            "claimed_until": now + CLAIM_LEASE_SECONDS,
            "ttl": now + RECORD_RETENTION_SECONDS,
        }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(run_key) OR (#status = :pending AND claimed_until < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":pending": RecordStatus.PENDING.value, ":now": now}),
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def complete(self, record: CredentialRecord, token: str, ttl: int, also_put: Sequence[dict[str, Any]] = ()) -> None:
        """Replace our claim with the finished record; refused if our lease was taken over.

        `also_put` (TransactWriteItems `Put`s, e.g. the audit session mappings) are written in the same
        request, all or nothing: one request either way, so a vend stays at six AWS requests."""
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": self._item(record, ttl),
            "ConditionExpression": "claim_token = :token",
            "ExpressionAttributeValues": to_item({":token": token}),
        }
        if not also_put:
            self.client.put_item(**put)
            return
        items: list[Any] = [{"Put": put}, *({"Put": p} for p in also_put)]
        self.client.transact_write_items(TransactItems=items)

    def _item(self, record: CredentialRecord, ttl: int) -> dict[str, Any]:
        values = record.model_dump(mode="json", exclude={"ciphertext", "assume_role"})
        values.update(run_key=record.run.run_key, ttl=ttl)
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
            response = self.client.update_item(
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
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        return CredentialRecord.model_validate(from_item(response["Attributes"]))

    def release_refresh(self, run: RunPhase, integration_id: str, token: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(run, integration_id),
                UpdateExpression="REMOVE refresh_token, refresh_until",
                ConditionExpression="refresh_token = :token",
                ExpressionAttributeValues=to_item({":token": token}),
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

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
        None when written; else the index of the first item whose condition failed (0: the record's own,
        then the condition checks in their order)."""
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
            {"Put": put},
            *({"ConditionCheck": c} for c in condition_checks),
            *({"Put": p} for p in also_put),
        ]
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons") or []
            failed = [i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"]
            if not failed:
                raise
            return failed[0]
        return None

    def release(self, run: RunPhase, integration_id: str, token: str) -> None:
        """Give a claim back after a transient failure, so that the retry need not wait for the lease."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=self._key(run, integration_id),
                ConditionExpression="claim_token = :token",
                ExpressionAttributeValues=to_item({":token": token}),
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

    def records(self, run: RunPhase) -> list[CredentialRecord]:
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="run_key = :key",
            ExpressionAttributeValues=to_item({":key": run.run_key}),
            ConsistentRead=True,
        )
        return [CredentialRecord.model_validate(from_item(item)) for item in response["Items"]]

    def finish(self, run: RunPhase) -> int:
        """Erase the phase's credentials, leaving a tombstone so a late duplicate cannot vend again."""
        erased = 0
        for record in self.records(run):
            if record.status is RecordStatus.FINISHED:
                continue
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(run, record.integration_id),
                UpdateExpression="SET #status = :finished, #ttl = :ttl REMOVE ciphertext, claim_token",
                ExpressionAttributeNames={"#status": "status", "#ttl": "ttl"},
                ExpressionAttributeValues=to_item(
                    {
                        ":finished": RecordStatus.FINISHED.value,
                        ":ttl": int(time.time()) + RECORD_RETENTION_SECONDS,
                    }
                ),
            )
            erased += 1
        return erased
