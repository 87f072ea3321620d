"""CloudTrail records as the indexer reads them, and the index items it makes of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runcreds.logic.audit.ingest import MalformedRecordError, parse_record
from runcreds.logic.audit.item import index_item
from runcreds.logic.audit.resolution import Resolution
from runcreds.models.audit import SessionMapping, parse_event_time
from runcreds.models.bodies import AuditEventOut
from runcreds.models.run import Phase
from tests.support import EVENTS, load_event

SAMPLES = sorted(p.name for p in (EVENTS / "audit").glob("*.json") if not p.name.startswith(("malformed", "sqs_")))
MAPPING = SessionMapping(
    account="acme",
    stack="networking-prod",
    run_id="01DSJ63P40BAZY4VW8BXXG7M4K",
    phase=Phase.APPLY,
    integration_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
    role_arn="arn:aws:iam::123456789012:role/customer-deployer",
    session_name="01DSJ63P40BAZY4VW8BXXG7M4K",
    source_identity="01DSJ63P40BAZY4VW8BXXG7M4K",
    access_key_id="ASIAQRUNSESSION00001",
    mode="broker",
    issued_at=0,
)

# docs/interface.md §4: the fields of an audit event.
INTERFACE_FIELDS = (
    "event_id", "event_time", "event_source", "event_name", "aws_region", "aws_account_id", "role_arn",
    "session_name", "source_identity", "run_id", "error_code", "error_message", "read_only", "resources",
    "source_ip", "user_agent",
)  # fmt: skip


def resolution() -> Resolution:
    return Resolution(MAPPING, MAPPING.role_arn, MAPPING.session_name, MAPPING.source_identity)


def body(sample: str, **detail: Any) -> str:
    event = load_event(f"audit/{sample}")
    event["detail"].update(detail)
    return json.dumps(event)


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_record_parses_into_a_bounded_item_with_every_documented_field(sample: str) -> None:
    # Given a CloudTrail sample modelled on AWS's documentation
    event = parse_record(body(sample))

    # When the indexer makes its item
    item = index_item(event, resolution(), retention_days=400, now=0)

    # Then the item has every field the audit routes promise and stays far below DynamoDB's 400 KB
    assert item is not None
    shown = AuditEventOut.model_validate(item).model_dump()
    assert set(INTERFACE_FIELDS) <= set(shown)
    assert shown["run_id"] == MAPPING.run_id and shown["event_id"] == event.detail.event_id
    assert item["event_key"] == f"{item['event_time']}#{event.detail.event_id}"
    assert len(json.dumps(item)) < 200 * 1024


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T21:05:07Z", "2026-11-25T21:05:07"),
        ("2026-11-25 21:05:07.123456789+0000", "2026-11-25T21:05:07"),
        ("2026-11-25T22:05:07+01:00", "2026-11-25T21:05:07"),
        ("2026-11-25T21:05:07", "2026-11-25T21:05:07"),
        ("Wed, 25 Nov 2026 21:05:07 GMT", "2026-11-25T21:05:07"),
        (1795640707000, "2026-11-25T21:05:07"),
    ],
)
def test_odd_date_formats_are_read_as_utc(text: Any, expected: str) -> None:
    assert parse_event_time(text).replace(microsecond=0) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "detail",
    [
        {"eventID": None},
        {"eventTime": "sometime yesterday"},
        {"eventSource": ""},
        {"userIdentity": "root"},
        {"resources": "arn:aws:s3:::not-a-list"},
    ],
)
def test_a_record_cloudtrail_would_not_write_is_malformed(detail: dict[str, Any]) -> None:
    with pytest.raises(MalformedRecordError):
        parse_record(body("direct_s3_put_object.json", **detail))


def test_a_record_not_published_by_an_aws_service_is_malformed() -> None:
    event = json.loads(body("direct_s3_put_object.json"))
    event["source"] = "forged.cloudtrail"
    with pytest.raises(MalformedRecordError):
        parse_record(json.dumps(event))


def test_malformed_sample_and_non_json_bodies_are_malformed() -> None:
    for text in ((EVENTS / "audit/malformed_missing_event_id.json").read_text(), "not json", "[]"):
        with pytest.raises(MalformedRecordError):
            parse_record(text)


def test_null_response_elements_and_missing_resources_still_index() -> None:
    # Given an AccessDenied record: responseElements null, no resources
    event = parse_record(body("access_denied_run_instances.json"))

    # When it is indexed
    item = index_item(event, resolution(), retention_days=400, now=0)

    # Then the error is kept, resources are empty, and the resource is found in requestParameters or absent
    assert item is not None
    assert item["error_code"] == "Client.UnauthorizedOperation"
    assert "not authorized" in item["error_message"]
    assert item["resources"] == []
    assert item["read_only"] is False


def test_the_assume_role_session_token_and_secret_named_parameters_never_reach_the_item() -> None:
    # Given an AssumeRole record (CloudTrail logs the new session's token) and a parameter named like a secret
    event = parse_record(
        body(
            "broker_assume_role.json",
            requestParameters={
                "roleArn": MAPPING.role_arn,
                "clientSecret": "hunter2hunter2",
                "nested": [{"Password": "p"}],
            },
        )
    )

    # When it is indexed
    item = index_item(event, resolution(), retention_days=400, now=0)

    # Then neither the token nor the secret values are anywhere in the item
    text = json.dumps(item)
    assert "IQoJb3JpZ2lu" not in text
    assert "hunter2" not in text and '"p"' not in text
    assert MAPPING.role_arn in item["request_parameters"]  # type: ignore[index]


def test_secrets_given_as_name_and_value_pairs_are_hidden_and_their_neighbours_kept() -> None:
    # Given parameters that carry a secret as {name, value} (ECS task environments, CloudFormation
    # parameters, SSM-style lists): the key is innocent, the sibling name says what the value is
    event = parse_record(
        body(
            "direct_s3_put_object.json",
            requestParameters={
                "environment": [{"name": "DB_PASSWORD", "value": "hunter2hunter2"}, {"name": "REGION", "value": "eu"}],
                "parameters": [{"parameterKey": "AdminPassword", "parameterValue": "s3cr3tvalue"}],
                "tags": [{"Key": "ApiToken", "Value": "tok-123456"}],
            },
        )
    )

    # When it is indexed
    item = index_item(event, resolution(), retention_days=400, now=0)

    # Then the secret values are gone, and the harmless pair is intact
    text = str(item["request_parameters"])  # type: ignore[index]
    assert "hunter2" not in text and "s3cr3t" not in text and "tok-123456" not in text
    assert '{"name":"REGION","value":"eu"}' in text


def test_oversized_request_parameters_are_trimmed_below_the_item_limit() -> None:
    # Given requestParameters of ~1 MB
    event = parse_record(
        body("large_request_parameters_put_parameter.json", requestParameters={"value": "v" * 1_000_000})
    )

    # When indexed
    item = index_item(event, resolution(), retention_days=400, now=0)

    # Then they are cut to 64 KB, marked so, and the item fits DynamoDB
    assert item is not None
    assert item["request_parameters_truncated"] is True
    assert len(item["request_parameters"].encode()) <= 64 * 1024
    assert len(json.dumps(item).encode()) < 400 * 1024


def test_retention_sets_the_ttl_and_records_older_than_it_are_not_kept() -> None:
    event = parse_record(body("direct_s3_put_object.json", eventTime="2026-01-01T00:00:00Z"))
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())

    kept = index_item(event, resolution(), retention_days=400, now=start + 86400)
    expired = index_item(event, resolution(), retention_days=400, now=start + 401 * 86400)

    assert kept is not None and kept["ttl"] == start + 400 * 86400
    assert expired is None


def test_samples_directory_covers_each_robustness_case() -> None:
    names = {p.name for p in Path(EVENTS / "audit").glob("*.json")}
    assert {
        "direct_s3_put_object.json",
        "chained_role_create_role.json",
        "access_denied_run_instances.json",
        "duplicate_create_role.json",
        "foreign_session_delete_object.json",
        "broker_assume_role.json",
        "odd_date_no_resources_describe_table.json",
        "large_request_parameters_put_parameter.json",
        "malformed_missing_event_id.json",
    } <= names


SECRET_NAMES = [
    "password", "DB_PASSWORD", "dbPassword", "master-passwd", "user.pwd", "Pass", "passphrase", "clientSecret",
    "secret_access_key", "SessionToken", "x-api-key", "ApiKey", "api key", "PRIVATE_KEY", "privateKey",
    "Authorization", "credential", "Credentials", "connectionString", "Connection-String", "passwords",
]  # fmt: skip
HARMLESS_NAMES = [
    "bypass", "compass", "tokenizer", "secretary", "passwordless", "secretId", "tokenType", "passwordLength",
    "maxPasswordAge", "secretArn", "bucketName", "passengerCount",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_a_parameter_named_like_a_secret_is_hidden_whatever_its_case_or_separator(name: str) -> None:
    # Given a request parameter whose name, in any spelling, says it holds a secret
    event = parse_record(body("direct_s3_put_object.json", requestParameters={name: "v4lue-0f-the-secret"}))

    # When it is indexed
    item = index_item(event, resolution(), retention_days=400, now=0)

    # Then its value is gone, and so is the value given as a {name, value} pair
    assert "v4lue-0f-the-secret" not in json.dumps(item)
    paired = parse_record(
        body("direct_s3_put_object.json", requestParameters={"settings": [{"optionName": name, "value": "s3cr3t"}]})
    )
    assert "s3cr3t" not in json.dumps(index_item(paired, resolution(), retention_days=400, now=0))


@pytest.mark.parametrize("name", HARMLESS_NAMES)
def test_a_parameter_about_a_secret_but_not_one_is_kept(name: str) -> None:
    # Given a parameter that names a secret's metadata, or a word that merely contains a secret's name
    event = parse_record(body("direct_s3_put_object.json", requestParameters={name: "kept-value"}))

    # When it is indexed, then the auditor still sees it
    assert "kept-value" in json.dumps(index_item(event, resolution(), retention_days=400, now=0))
