"""Attachments of integrations to stacks: one item per (account#stack, integration_id)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from typing import Any

from runcreds.dal.items import TableStore, from_item, to_item
from runcreds.dal.keys import integration_key, stack_key
from runcreds.exceptions import ConditionFailedError, ConflictError, NotFoundError
from runcreds.models.entities import VEND_FIELDS, Attachment, VerificationStatus


class AttachmentsStore(TableStore):
    def put(self, attachment: Attachment, integration_change: dict[str, Any]) -> Attachment:
        """Write the attachment and, in the same transaction, `integration_change` (the integration's record
        of its stacks, conditional on the integration being as read): ConflictError if that condition
        failed (deleted or PATCHed meanwhile), and nothing is written."""
        values = attachment.model_dump(mode="json")
        values["stack_key"] = stack_key(attachment.account, attachment.stack)
        values["integration_key"] = integration_key(attachment.account, attachment.integration_id)
        put = {"Put": {"TableName": self.table_name, "Item": to_item(values)}}
        try:
            self.transact_write_items([put, integration_change])
        except ConditionFailedError as failure:
            if 1 in failure.failed:
                raise ConflictError(
                    f"integration {attachment.integration_id} was changed or deleted while it was being attached: "
                    "read it again and retry"
                ) from None
            raise
        return attachment

    def delete(self, account: str, stack: str, integration_id: str, integration_change: dict[str, Any]) -> None:
        """Delete the attachment and, in the same transaction, the integration's record of the stack. An
        attachment whose integration is gone (left by a version without that record) is deleted alone."""
        key = to_item({"stack_key": stack_key(account, stack), "integration_id": integration_id})
        delete = {
            "Delete": {"TableName": self.table_name, "Key": key, "ConditionExpression": "attribute_exists(stack_key)"}
        }
        try:
            self.transact_write_items([delete, integration_change])
            return
        except ConditionFailedError as failure:
            if 0 in failure.failed:
                raise NotFoundError(f"integration {integration_id} is not attached to stack {stack}") from None
            if 1 not in failure.failed:
                raise
        response = self.delete_item(TableName=self.table_name, Key=key, ReturnValues="ALL_OLD")
        if "Attributes" not in response:
            raise NotFoundError(f"integration {integration_id} is not attached to stack {stack}")

    def list_for_stack(self, account: str, stack: str) -> list[Attachment]:
        """One Query: what a vend reads. Consistent, so an attachment made a moment ago counts."""
        items = self.query("stack_key", stack_key(account, stack), ConsistentRead=True)
        return [Attachment.model_validate(item) for item in items]

    def get(self, account: str, stack: str, integration_id: str) -> Attachment:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"stack_key": stack_key(account, stack), "integration_id": integration_id}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise NotFoundError(f"integration {integration_id} is not attached to stack {stack}")
        return Attachment.model_validate(from_item(response["Item"]))

    def stacks_of(self, account: str, integration_id: str, limit: int | None = None) -> list[str]:
        """The stacks an integration is attached to (GSI by-integration: eventually consistent)."""
        page = {"Limit": limit} if limit else {}
        items = self.query("integration_key", integration_key(account, integration_id), "by-integration", **page)
        return [str(item["stack"]) for item in islice(items, limit)]

    def update_fields(
        self,
        account: str,
        stack: str,
        integration_id: str,
        values: dict[str, Any],
        unless_changed: dict[str, Any] | None = None,
    ) -> bool:
        """SET (or REMOVE, for None) these attributes of an existing attachment; False if it is gone, or
        if any attribute of `unless_changed` no longer has the value given there (None: absent)."""
        sets = {k: v for k, v in values.items() if v is not None}
        removes = [k for k, v in values.items() if v is None]
        was = unless_changed or {}
        names = {f"#{k}": k for k in (*values, *was)}
        conditions = ["attribute_exists(stack_key)"]
        conditions += [f"#{k} = :was_{k}" if v is not None else f"attribute_not_exists(#{k})" for k, v in was.items()]
        expression = ""
        if sets:
            expression += "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
        if removes:
            expression += " REMOVE " + ", ".join(f"#{k}" for k in removes)
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": to_item({"stack_key": stack_key(account, stack), "integration_id": integration_id}),
            "UpdateExpression": expression.strip(),
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
        }
        expected = {f":was_{k}": v for k, v in was.items() if v is not None}
        if sets or expected:
            request["ExpressionAttributeValues"] = to_item({**{f":{k}": v for k, v in sets.items()}, **expected})
        try:
            self.update_item(**request)
        except ConditionFailedError:
            return False
        return True

    def record_status(
        self,
        attachment: Attachment,
        status: VerificationStatus,
        checked_at: datetime,
        code: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """The outcome of verifying `attachment` as it was read; False (nothing written) if it is gone or
        was changed since (a PATCH of its vend fields, a new attach): that newer answer stands."""
        read = attachment.model_dump(mode="json", include={*VEND_FIELDS, "read", "write", "attached_at"})
        return self.update_fields(
            attachment.account,
            attachment.stack,
            attachment.integration_id,
            {
                "status": status.value,
                "checked_at": checked_at.isoformat(),
                "status_code": code,
                "status_reason": reason,
            },
            unless_changed=read,
        )

    def scan_verified_by_runcreds(
        self, start_key: dict[str, Any] | None = None, page_size: int = 100
    ) -> Iterator[tuple[list[Attachment], dict[str, Any] | None]]:
        """Every attachment whose trust runcreds verifies (the broker assumes its role, or it trusts runcreds'
        OIDC token, worker mode too: logic.role_checks.verified_by_runcreds), across accounts (re-verification), a
        page at a time from `start_key`: (its attachments, the key to go on from, None after the last page)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "assume_role_on_worker = :false OR #trust = :oidc",
            "ExpressionAttributeNames": {"#trust": "trust"},
            "ExpressionAttributeValues": to_item({":false": False, ":oidc": "oidc"}),
            "Limit": page_size,
        }
        if start_key:
            request["ExclusiveStartKey"] = start_key
        while True:
            response = self.client.scan(**request)
            next_key = response.get("LastEvaluatedKey")
            yield [Attachment.model_validate(from_item(item)) for item in response["Items"]], next_key
            if next_key is None:
                return
            request["ExclusiveStartKey"] = next_key
