"""Integrations: one item per (account, integration_id)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from runcreds import aws
from runcreds.dal.items import from_item, to_item
from runcreds.exceptions import ConflictError, NotFoundError
from runcreds.models.entities import Integration

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class IntegrationsStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

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
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="account = :account",
            ExpressionAttributeValues=to_item({":account": account}),
        )
        return [Integration.model_validate(from_item(item)) for page in pages for item in page["Items"]]
