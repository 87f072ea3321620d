"""Tables kept as they were: moto's TransactWriteItems deep-copies each table it touches, once per item, so its
time grows with the table's contents (real DynamoDB's does not). A benchmark that writes every round
deletes the round's items afterwards, untimed, so that every round measures the same tables."""

from __future__ import annotations

import json
from typing import Any


class TableBaseline:
    def __init__(self, dynamodb: Any, tables: tuple[str, ...]) -> None:
        self.dynamodb = dynamodb
        self.tables = tables
        self.baseline = {table: set(self._keys(table)) for table in tables}

    def _keys(self, table: str) -> dict[str, dict[str, Any]]:
        schema = self.dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
        names = [k["AttributeName"] for k in schema]
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=table)
        return {json.dumps(key, sort_keys=True): key
                for page in pages for item in page["Items"] for key in [{n: item[n] for n in names}]}  # fmt: skip

    def restore(self) -> None:
        """Deletes every item written since the baseline was taken."""
        for table in self.tables:
            for text, key in self._keys(table).items():
                if text not in self.baseline[table]:
                    self.dynamodb.delete_item(TableName=table, Key=key)
