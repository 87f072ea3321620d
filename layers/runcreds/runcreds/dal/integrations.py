"""Integrations: one item per (account, integration_id)."""

from __future__ import annotations

from datetime import datetime

from botocore.exceptions import ClientError
from pydantic import TypeAdapter

from runcreds.dal.items import TableStore, from_item, to_item
from runcreds.exceptions import ConflictError, NotFoundError
from runcreds.models.entities import Integration


class IntegrationsStore(TableStore):
    def create(self, integration: Integration) -> Integration:
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=to_item(integration.model_dump(mode="json", by_alias=True)),
                ConditionExpression="attribute_not_exists(integration_id)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(f"integration {integration.id} already exists") from None
            raise
        return integration

    def get(self, account: str, integration_id: str) -> Integration:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"account": account, "integration_id": integration_id}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise NotFoundError(f"integration {integration_id} not found in account {account}")
        return Integration.model_validate(from_item(response["Item"]))

    def list(self, account: str) -> list[Integration]:
        return [Integration.model_validate(item) for item in self.query("account", account)]

    def replace(self, integration: Integration, previous_updated_at: datetime | None) -> Integration:
        """Write a changed integration, unless someone else changed it since we read it (optimistic lock)."""
        condition = "attribute_exists(integration_id) AND "
        values: dict[str, object] = {}
        if previous_updated_at is None:
            condition += "attribute_not_exists(updated_at)"
        else:
            condition += "updated_at = :previous"
            # As the item stores it: pydantic's JSON form of the datetime (UTC as "Z").
            values[":previous"] = TypeAdapter(datetime).dump_python(previous_updated_at, mode="json")
        request: dict[str, object] = {
            "TableName": self.table_name,
            "Item": to_item(integration.model_dump(mode="json", by_alias=True)),
            "ConditionExpression": condition,
        }
        if values:
            request["ExpressionAttributeValues"] = to_item(values)
        try:
            self.client.put_item(**request)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(
                    f"integration {integration.id} was changed or deleted meanwhile: read it again and retry"
                ) from None
            raise
        return integration

    def delete(self, account: str, integration_id: str) -> None:
        response = self.client.delete_item(
            TableName=self.table_name,
            Key=to_item({"account": account, "integration_id": integration_id}),
            ReturnValues="ALL_OLD",
        )
        if "Attributes" not in response:
            raise NotFoundError(f"integration {integration_id} not found in account {account}")
