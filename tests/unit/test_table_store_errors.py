"""The table store translates DynamoDB's errors once for every store (runcreds.dal.items.TableStore): a failed
condition is ConditionFailedError (with the transaction's reasons, or the stored item), throttling, 5xx and
lost connections are TransientAwsError, anything else propagates as DynamoDB raised it.

Real boto3 clients throughout: moto answers the conditions, botocore's Stubber the faults moto cannot make.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from runcreds.dal.items import TableStore, to_item
from runcreds.exceptions import ConditionFailedError, ConflictError, TransientAwsError

TABLE = "things"
REGION = "us-east-1"


@pytest.fixture
def store(moto_aws: None) -> TableStore:
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TableStore(TABLE, client)


def put_new(store: TableStore, thing_id: str, **values: Any) -> dict[str, Any]:
    return store.put_item(
        TableName=TABLE,
        Item=to_item({"id": thing_id, **values}),
        ConditionExpression="attribute_not_exists(id)",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


# ---------------------------------------------------------------------- conditions (moto)
def test_a_single_write_whose_condition_fails_is_a_condition_failure_with_the_stored_item(store: TableStore) -> None:
    put_new(store, "a", weight=3)
    with pytest.raises(ConditionFailedError) as raised:
        put_new(store, "a", weight=4)
    assert isinstance(raised.value, ConflictError)  # unanswered by its store, it is a 409
    assert raised.value.item == {"id": "a", "weight": 3}  # plain values, not DynamoDB's typed form
    assert raised.value.reasons == ()


@pytest.mark.parametrize("write", ["update_item", "delete_item"])
def test_updates_and_deletes_whose_condition_fails_are_condition_failures(store: TableStore, write: str) -> None:
    request: dict[str, Any] = {"TableName": TABLE, "Key": to_item({"id": "absent"})}
    request["ConditionExpression"] = "attribute_exists(id)"
    if write == "update_item":
        request["UpdateExpression"] = "SET weight = :one"
        request["ExpressionAttributeValues"] = to_item({":one": 1})
    with pytest.raises(ConditionFailedError) as raised:
        getattr(store, write)(**request)
    assert raised.value.item is None  # not asked for


def test_a_write_whose_condition_holds_returns_dynamodbs_answer(store: TableStore) -> None:
    put_new(store, "a", weight=3)
    answer = store.update_item(
        TableName=TABLE,
        Key=to_item({"id": "a"}),
        UpdateExpression="SET weight = :four",
        ConditionExpression="weight = :three",
        ExpressionAttributeValues=to_item({":three": 3, ":four": 4}),
        ReturnValues="ALL_NEW",
    )
    assert answer["Attributes"]["weight"] == {"N": "4"}


def test_a_transaction_cancelled_by_a_condition_says_which_item_failed(store: TableStore) -> None:
    put_new(store, "b")
    items = [
        {"Put": {"TableName": TABLE, "Item": to_item({"id": "c"})}},
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": to_item({"id": "b"}),
                "ConditionExpression": "attribute_not_exists(id)",
            }
        },
    ]
    with pytest.raises(ConditionFailedError) as raised:
        store.transact_write_items(items)
    assert raised.value.reasons == ("None", "ConditionalCheckFailed")
    assert raised.value.failed == [1]
    assert "Item" not in store.client.get_item(TableName=TABLE, Key=to_item({"id": "c"}))  # all or nothing


# ---------------------------------------------------------------------- faults (botocore's Stubber)
def stubbed(store: TableStore, operation: str, code: str, status: int = 400, **fields: Any) -> Stubber:
    stubber = Stubber(store.client)
    stubber.add_client_error(
        operation, service_error_code=code, service_message="m", http_status_code=status, modeled_fields=fields or None
    )
    stubber.activate()
    return stubber


def update(store: TableStore) -> None:
    store.update_item(TableName=TABLE, Key=to_item({"id": "a"}), UpdateExpression="REMOVE weight")


def transact(store: TableStore) -> None:
    store.transact_write_items([{"Put": {"TableName": TABLE, "Item": to_item({"id": "a"})}}])


def reasons(*codes: str) -> dict[str, Any]:
    return {"CancellationReasons": [{"Code": code} for code in codes]}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("TransactionConflictException", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_throttling_and_5xx_are_transient(store: TableStore, code: str, status: int) -> None:
    with stubbed(store, "update_item", code, status), pytest.raises(TransientAwsError) as raised:
        update(store)
    assert code in str(raised.value) and "UpdateItem" in str(raised.value)


@pytest.mark.parametrize("why", [("None", "ThrottlingError"), ("TransactionConflict", "None")])
def test_a_transaction_cancelled_by_throttling_or_a_conflict_is_transient(
    store: TableStore, why: tuple[str, ...]
) -> None:
    cancelled = reasons(*why)
    with (
        stubbed(store, "transact_write_items", "TransactionCanceledException", **cancelled),
        pytest.raises(TransientAwsError),
    ):
        transact(store)


@pytest.mark.parametrize(
    "why", [("ConditionalCheckFailed", "TransactionConflict"), ("None", "ThrottlingError", "ConditionalCheckFailed")]
)
def test_a_condition_failing_among_throttling_or_a_conflict_is_no_answer_yet_but_transient(
    store: TableStore, why: tuple[str, ...]
) -> None:
    cancelled = reasons(*why)
    with (
        stubbed(store, "transact_write_items", "TransactionCanceledException", **cancelled),
        pytest.raises(TransientAwsError) as raised,
    ):
        transact(store)
    assert "TransactWriteItems" in str(raised.value)


@pytest.mark.parametrize(
    ("operation", "code", "extra"),
    [
        ("update_item", "ValidationException", {}),
        ("update_item", "AccessDeniedException", {}),
        ("update_item", "ResourceNotFoundException", {}),
        ("transact_write_items", "TransactionCanceledException", reasons("ValidationError", "None")),
        ("transact_write_items", "TransactionCanceledException", reasons("ValidationError", "ConditionalCheckFailed")),
    ],
)
def test_anything_else_propagates_as_dynamodb_raised_it(
    store: TableStore, operation: str, code: str, extra: dict[str, Any]
) -> None:
    with stubbed(store, operation, code, **extra), pytest.raises(ClientError) as raised:
        update(store) if operation == "update_item" else transact(store)
    assert raised.value.response["Error"]["Code"] == code


def test_a_connection_lost_is_transient() -> None:
    # Nothing listens on port 9 of the loopback: the connection is refused at once, and not retried.
    config = Config(retries={"max_attempts": 0, "mode": "standard"}, connect_timeout=1)
    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        config=config,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with pytest.raises(TransientAwsError) as raised:
        TableStore(TABLE, client).delete_item(TableName=TABLE, Key=to_item({"id": "a"}))
    assert "EndpointConnectionError" in str(raised.value)
