"""Where the re-verification pass stands: one item, so a run that stops goes on from there next time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from runcreds.dal.items import TableStore, from_item, to_item

_NAME = "attachments"


class Checkpoint(BaseModel):
    started_at: datetime
    finished_at: datetime | None = None
    # The Scan's LastEvaluatedKey after the last page fully verified (None: from the start).
    next_key: dict[str, Any] | None = None


class CheckpointStore(TableStore):
    def load(self) -> Checkpoint | None:
        response = self.client.get_item(TableName=self.table_name, Key=to_item({"name": _NAME}), ConsistentRead=True)
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        return Checkpoint.model_validate_json(item["checkpoint"])

    def save(self, checkpoint: Checkpoint) -> None:
        # Stored as JSON: the Scan key is already in DynamoDB's typed form.
        self.put_item(
            TableName=self.table_name, Item=to_item({"name": _NAME, "checkpoint": checkpoint.model_dump_json()})
        )
