"""DynamoDB attribute-value conversion for the low-level client, and the base of the stores.

The conversion is runcreds' own (boto3's TypeSerializer would import the whole of boto3 into every cold
start): str, int and Decimal, bool, None, bytes, lists, maps and sets, read back with numbers as int (float
when fractional) and binary as bytes. A float is refused, as boto3 refuses it: it is inexact.

The stores write through TableStore's put_item, update_item, delete_item and transact_write_items, which
translate DynamoDB's errors once for all of them: a condition that failed (ConditionalCheckFailedException,
or a transaction cancelled for failed conditions only) is ConditionFailedError, an answer for the store to
turn into its own; throttling, 5xx, timeouts and transaction conflicts, with or without a failed condition
beside them, are TransientAwsError (runcreds.faults decides which); anything else propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runcreds import aws
from runcreds.exceptions import ConditionFailedError
from runcreds.faults import classified, error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# DynamoDB's numbers: 38 significant digits, exponents from -130 to +125 (its documented limits). A number
# outside them, or one that would be rounded, is refused rather than stored as another number.
_NUMBERS = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def _number(value: int | Decimal) -> str:
    number = str(_NUMBERS.create_decimal(value))
    if number in ("Infinity", "-Infinity", "NaN", "sNaN"):
        raise TypeError(f"DynamoDB has no number {number}")
    return number


def _attribute(value: Any) -> dict[str, Any]:
    """A value as a DynamoDB attribute value (the low-level client's form)."""
    if isinstance(value, bool):  # before int: True is an int
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | Decimal):
        return {"N": _number(value)}
    if isinstance(value, float):
        raise TypeError("floats are not stored (inexact): give an int or a Decimal")
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): _attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_attribute(v) for v in value]}
    if isinstance(value, set | frozenset) and value:
        members = [_attribute(v) for v in value]
        kinds = {next(iter(m)) for m in members}
        if len(kinds) == 1 and (kind := kinds.pop()) in ("S", "N", "B"):
            return {f"{kind}S": [m[kind] for m in members]}
    raise TypeError(f"no DynamoDB attribute value for a {type(value).__name__}")


def _value(attribute: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as a plain value: numbers as int (or float when fractional), binary as bytes."""
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return _plain_number(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(value)
    if kind == "M":
        return {k: _value(v) for k, v in value.items()}
    if kind == "L":
        return [_value(v) for v in value]
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {Decimal(v) for v in value}
    if kind == "BS":
        return {bytes(v) for v in value}
    raise TypeError(f"unknown DynamoDB attribute type {kind}")


def _plain_number(text: str) -> int | float:
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as a DynamoDB item; a None value is left out (not stored as NULL)."""
    return {k: _attribute(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _value(v) for k, v in item.items()}


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
