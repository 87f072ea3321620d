"""Integrations: one item per (account, integration_id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from runcreds.dal.items import TableStore, from_item, to_item
from runcreds.exceptions import ConditionFailedError, ConflictError, NotFoundError
from runcreds.models.entities import Integration


class IntegrationsStore(TableStore):
    def create(self, integration: Integration) -> Integration:
        try:
            self.put_item(
                TableName=self.table_name,
                Item=to_item(integration.model_dump(mode="json", by_alias=True)),
                ConditionExpression="attribute_not_exists(integration_id)",
            )
        except ConditionFailedError:
            raise ConflictError(f"integration {integration.id} already exists") from None
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

    def replace(self, integration: Integration, read: Integration) -> Integration:
        """Write a changed integration, unless it changed since it was `read` (optimistic lock): another
        PATCH, or an attach or detach (its set of stacks), which the caller's rewrite of copies would miss."""
        condition, values = _unchanged_since(read.updated_at)
        if read.attached_stacks:
            condition += " AND attached_stacks = :stacks"
            values[":stacks"] = read.attached_stacks
        else:
            condition += " AND attribute_not_exists(attached_stacks)"
        item = integration.model_dump(mode="json", by_alias=True)
        item["attached_stacks"] = read.attached_stacks or None
        request: dict[str, object] = {
            "TableName": self.table_name,
            "Item": to_item(item),
            "ConditionExpression": condition,
        }
        if values:
            request["ExpressionAttributeValues"] = to_item(values)
        try:
            self.put_item(**request)
        except ConditionFailedError:
            raise ConflictError(
                f"integration {integration.id} was changed or deleted meanwhile: read it again and retry"
            ) from None
        return integration

    def delete(self, account: str, integration_id: str) -> set[str]:
        """Delete it unless attached; returns the stacks it is attached to (nothing deleted), or an empty set.
        The condition reads the item every attach writes in its transaction: an attach committed a moment
        ago keeps the integration, and one after the delete finds nothing to attach to."""
        try:
            self.delete_item(
                TableName=self.table_name,
                Key=to_item({"account": account, "integration_id": integration_id}),
                ConditionExpression="attribute_exists(integration_id) AND attribute_not_exists(attached_stacks)",
            )
        except ConditionFailedError:
            return self.get(account, integration_id).attached_stacks  # NotFoundError if it is gone
        return set()

    def record_attached(self, integration: Integration, stack: str) -> dict[str, Any]:
        """The TransactWriteItems action that adds `stack` to the integration's stacks, conditional on the
        integration being as `integration` was read (not deleted, not PATCHed since): so the attachment's
        copy of the vend fields is the integration's current one."""
        condition, values = _unchanged_since(integration.updated_at)
        return self._stacks_update(
            integration.account, integration.id, "ADD attached_stacks :stack", condition, {**values, ":stack": {stack}}
        )

    def record_detached(self, account: str, integration_id: str, stack: str) -> dict[str, Any]:
        """The TransactWriteItems action that removes `stack` from the integration's stacks (never creating
        an integration item)."""
        return self._stacks_update(
            account,
            integration_id,
            "DELETE attached_stacks :stack",
            "attribute_exists(integration_id)",
            {":stack": {stack}},
        )

    def _stacks_update(
        self, account: str, integration_id: str, expression: str, condition: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"account": account, "integration_id": integration_id}),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": to_item(values),
            }
        }


def _unchanged_since(updated_at: datetime | None) -> tuple[str, dict[str, Any]]:
    """A condition that the integration exists and was not PATCHed since it was read with `updated_at`."""
    if updated_at is None:
        return "attribute_exists(integration_id) AND attribute_not_exists(updated_at)", {}
    # As the item stores it: pydantic's JSON form of the datetime (UTC as "Z").
    previous = TypeAdapter(datetime).dump_python(updated_at, mode="json")
    return "attribute_exists(integration_id) AND updated_at = :previous", {":previous": previous}
