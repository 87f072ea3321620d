"""DynamoDB attribute-value conversion for the low-level client, and the base of the stores.

The stores write through TableStore's put_item, update_item, delete_item and transact_write_items, which
translate DynamoDB's errors once for all of them: a condition that failed (ConditionalCheckFailedException,
or a transaction cancelled for failed conditions only) is ConditionFailedError, an answer for the store to
turn into its own; throttling, 5xx, timeouts and transaction conflicts, with or without a failed condition
beside them, are TransientAwsError (runcreds.faults decides which); anything else propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from runcreds import aws
from runcreds.exceptions import ConditionFailedError
from runcreds.faults import classified, error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3 Binary
        return bytes(value.value)
    return value


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def condition_failure(error: ClientError, operation: str) -> ConditionFailedError | None:
    """The failed condition `error` reports, if that is all it reports. A transaction cancelled for a
    condition and also for throttling or a conflict has no answer yet: it is left to the classification
    (transient), and the retry gets the answer."""
    code = error_code(error)
    if code == "ConditionalCheckFailedException":
        stored: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
        return ConditionFailedError(operation, item=from_item(stored) if stored else None)
    if code == "TransactionCanceledException":
        reasons = tuple(str(r.get("Code") or "None") for r in error.response.get("CancellationReasons", []))
        if ConditionFailedError.CONDITION in reasons and set(reasons) <= {"None", ConditionFailedError.CONDITION}:
            return ConditionFailedError(operation, reasons=reasons)
    return None


class TableStore:
    """A store over one table: its name, and a client (the shared lazy one unless a test gives its own)."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    def query(self, key: str, value: str, index: str | None = None, **options: Any) -> Iterator[dict[str, Any]]:
        """Every item whose partition key `key` is `value`, page after page, as plain values. Pages are
        fetched as the caller iterates: stop early and no further page is read."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#key = :key",
            "ExpressionAttributeNames": {"#key": key},
            "ExpressionAttributeValues": to_item({":key": value}),
            **({"IndexName": index} if index else {}),
            **options,
        }
        while True:
            response = self.client.query(**request)
            yield from (from_item(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # ------------------------------------------------------------------ writes, their errors translated
    def put_item(self, **request: Any) -> dict[str, Any]:
        return self._write("PutItem", self.client.put_item, request)

    def update_item(self, **request: Any) -> dict[str, Any]:
        return self._write("UpdateItem", self.client.update_item, request)

    def delete_item(self, **request: Any) -> dict[str, Any]:
        return self._write("DeleteItem", self.client.delete_item, request)

    def transact_write_items(self, items: list[dict[str, Any]]) -> None:
        """All of `items` or none; ConditionFailedError's `reasons` say which item's condition failed."""
        self._write("TransactWriteItems", self.client.transact_write_items, {"TransactItems": items})

    @staticmethod
    def _write(operation: str, call: Callable[..., Any], request: dict[str, Any]) -> dict[str, Any]:
        with classified("dynamodb", operation):
            try:
                return dict(call(**request))
            except ClientError as error:
                failure = condition_failure(error, operation)
                if failure is None:
                    raise  # classified: transient or not
                raise failure from None
