"""Attachments of integrations to stacks: one item per (account#stack, integration_id)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runcreds import aws
from runcreds.dal.items import from_item, to_item
from runcreds.exceptions import NotFoundError
from runcreds.models.entities import Attachment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def stack_key(account: str, stack: str) -> str:
    return f"{account}#{stack}"


def integration_key(account: str, integration_id: str) -> str:
    return f"{account}#{integration_id}"


class AttachmentsStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    def put(self, attachment: Attachment) -> Attachment:
        values = attachment.model_dump(mode="json")
        values["stack_key"] = stack_key(attachment.account, attachment.stack)
        values["integration_key"] = integration_key(attachment.account, attachment.integration_id)
        self.client.put_item(TableName=self.table_name, Item=to_item(values))
        return attachment

    def delete(self, account: str, stack: str, integration_id: str) -> None:
        response = self.client.delete_item(
            TableName=self.table_name,
            Key=to_item({"stack_key": stack_key(account, stack), "integration_id": integration_id}),
            ReturnValues="ALL_OLD",
        )
        if "Attributes" not in response:
            raise NotFoundError(f"integration {integration_id} is not attached to stack {stack}")

    def list_for_stack(self, account: str, stack: str) -> list[Attachment]:
        """One Query: what a vend reads. Consistent, so an attachment made a moment ago counts."""
        items: list[Attachment] = []
        request: dict[str, object] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "stack_key = :key",
            "ExpressionAttributeValues": to_item({":key": stack_key(account, stack)}),
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**request)  # type: ignore[arg-type]
            items.extend(Attachment.model_validate(from_item(item)) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
