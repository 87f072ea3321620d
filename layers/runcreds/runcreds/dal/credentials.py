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
        values = record.model_dump(mode="json", exclude={"ciphertext", "assume_role"})
        values.update(run_key=record.run.run_key, ttl=ttl)
        if record.ciphertext is not None:
            values["ciphertext"] = record.ciphertext
        if record.assume_role is not None:
            values["assume_role"] = record.assume_role.model_dump(mode="json")
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": to_item(values),
            "ConditionExpression": "claim_token = :token",
            "ExpressionAttributeValues": to_item({":token": token}),
        }
        if not also_put:
            self.client.put_item(**put)
            return
        items: list[Any] = [{"Put": put}, *({"Put": p} for p in also_put)]
        self.client.transact_write_items(TransactItems=items)

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
