"""The one AssumeRole (runcreds.sts_calls) as STS receives it, and the broker's own hop told apart from the
customer role's answer. botocore's Stubber checks every parameter; no request is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from runcreds import aws, sts_calls
from runcreds.exceptions import BrokerUnavailableError, RoleRefusedError, TransientAwsError
from runcreds.logic.verification.probes import BrokerSts
from runcreds.run_scope import AssumeRoleSpec

SPEC = AssumeRoleSpec(
    role_arn="arn:aws:iam::123456789012:role/deploy", external_id="acme@01JD4Z8Q2M6V1T4B3X9N0C7K5R@web@write",
    session_name="run-1", duration_seconds=900, region="us-east-1",
    tags=[{"Key": "runcreds:account", "Value": "acme"}, {"Key": "runcreds:run", "Value": "run-1"}],
)  # fmt: skip
CREDENTIALS = {"AccessKeyId": "ASIA" + "X" * 12, "SecretAccessKey": "s" * 16, "SessionToken": "t" * 16,
               "Expiration": datetime(2030, 1, 1, tzinfo=UTC)}  # fmt: skip
ANSWER = {"Credentials": CREDENTIALS}


def sts(method: str, expected: dict[str, Any]) -> Any:
    client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_response(method, ANSWER, expected)
    stubber.activate()
    return client


def test_the_assume_role_carries_the_external_id_tags_and_source_identity() -> None:
    expected = {
        "RoleArn": SPEC.role_arn, "RoleSessionName": "run-1", "DurationSeconds": 900, "ExternalId": SPEC.external_id,
        "Tags": SPEC.tags, "TransitiveTagKeys": SPEC.transitive_tag_keys,
        "SourceIdentity": SPEC.source_identity,
    }  # fmt: skip
    assert sts_calls.assume_run_role(sts("assume_role", expected), SPEC) == CREDENTIALS


@pytest.mark.parametrize(
    ("flags", "left_out"),
    [
        ({"external_id": False}, {"ExternalId"}),  # attach verification's probe only
        ({"tags": False}, {"Tags", "TransitiveTagKeys"}),
        ({"source_identity": False}, {"SourceIdentity"}),
    ],
)
def test_what_the_caller_leaves_out_is_not_sent(flags: dict[str, bool], left_out: set[str]) -> None:
    everything = {
        "RoleArn": SPEC.role_arn, "RoleSessionName": "run-1", "DurationSeconds": 900, "ExternalId": SPEC.external_id,
        "Tags": SPEC.tags, "TransitiveTagKeys": SPEC.transitive_tag_keys, "SourceIdentity": SPEC.source_identity,
    }  # fmt: skip
    expected = {k: v for k, v in everything.items() if k not in left_out}
    assert sts_calls.assume_run_role(sts("assume_role", expected), SPEC, **flags) == CREDENTIALS


def test_the_web_identity_exchange_sends_the_token_the_name_and_the_duration_only() -> None:
    expected = {
        "RoleArn": SPEC.role_arn,
        "RoleSessionName": "run-1",
        "WebIdentityToken": "the-token",
        "DurationSeconds": 900,
    }
    client = sts("assume_role_with_web_identity", expected)
    assert sts_calls.assume_run_role_with_web_identity(client, SPEC, "the-token") == CREDENTIALS


@pytest.mark.parametrize(("code", "status", "raised"), [("AccessDenied", 403, RoleRefusedError),
                                                        ("ServiceUnavailable", 503, TransientAwsError)])  # fmt: skip
def test_the_web_identity_exchange_is_classified_as_the_assume_role(code: str, status: int, raised: type) -> None:
    client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_client_error("assume_role_with_web_identity", code, "m", status)
    stubber.activate()
    with pytest.raises(raised) as failure:
        sts_calls.assume_run_role_with_web_identity(client, SPEC, "the-token")
    if raised is TransientAwsError:
        assert str(failure.value) == "sts AssumeRoleWithWebIdentity failed transiently (ServiceUnavailable)"


def test_a_transient_assume_role_names_its_action() -> None:
    client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_client_error("assume_role", "Throttling", "slow down", 400)
    stubber.activate()
    with pytest.raises(TransientAwsError) as failure:
        sts_calls.assume_run_role(client, SPEC)
    assert str(failure.value) == "sts AssumeRole failed transiently (Throttling)"


class BrokerSession:
    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials

    def get_credentials(self) -> Any:
        return self.credentials


class Refreshing:
    """The broker role's credentials: assuming BrokerRole happens when they are first frozen."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.frozen = 0

    def get_frozen_credentials(self) -> None:
        self.frozen += 1
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (ClientError({"Error": {"Code": "AccessDenied", "Message": "m"}}, "AssumeRole"), "(AccessDenied)"),
        (EndpointConnectionError(endpoint_url="https://sts"), "(EndpointConnectionError)"),
    ],
)
def test_the_brokers_own_hop_failing_is_broker_unavailable_whatever_it_was(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, says: str
) -> None:
    credentials = Refreshing(error)
    monkeypatch.setattr(aws, "broker_session", lambda arn, name: BrokerSession(credentials))
    with pytest.raises(BrokerUnavailableError) as raised:
        sts_calls.broker_sts("arn:aws:iam::111111111111:role/BrokerRole", "runcreds-vend", "us-east-1")
    assert str(raised.value) == f"the broker could not assume its own role {says}"
    assert isinstance(raised.value, TransientAwsError)  # transient for the run: never the customer's verdict


def test_no_broker_credentials_is_broker_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    def session(arn: str, name: str) -> BrokerSession:
        asked.append((arn, name))
        return BrokerSession(None)

    monkeypatch.setattr(aws, "broker_session", session)
    with pytest.raises(BrokerUnavailableError) as raised:
        sts_calls.broker_sts("arn:aws:iam::111111111111:role/BrokerRole", "runcreds-vend", "us-east-1")
    assert str(raised.value) == "no credentials to assume the broker role with"
    assert asked == [("arn:aws:iam::111111111111:role/BrokerRole", "runcreds-vend")]


def test_the_broker_hop_made_the_client_is_the_brokers(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials, client = Refreshing(None), object()
    made: list[tuple[str, str, str | None]] = []

    def broker_sts(arn: str, name: str, region: str | None) -> object:
        made.append((arn, name, region))
        return client

    monkeypatch.setattr(aws, "broker_session", lambda arn, name: BrokerSession(credentials))
    monkeypatch.setattr(aws, "broker_sts", broker_sts)
    arn = "arn:aws:iam::111111111111:role/BrokerRole"
    assert sts_calls.broker_sts(arn, "runcreds-vend", "eu-west-1") is client
    assert credentials.frozen == 1
    assert made == [(arn, "runcreds-vend", "eu-west-1")]


def test_a_function_without_any_credentials_is_broker_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The real broker session (no stand-in), in an environment holding no credentials anywhere: the
    broker's own hop, an operator's problem (BrokerUnavailable), not an unclassified RuntimeError."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset_clients()
    try:
        with pytest.raises(BrokerUnavailableError) as raised:
            sts_calls.broker_sts("arn:aws:iam::111111111111:role/BrokerRole", "runcreds-vend", "us-east-1")
    finally:
        aws.reset_clients()
    assert str(raised.value) == "no credentials to assume the broker role with"


def test_the_broker_session_reads_no_service_model_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's session shares the function's loader of service models: a client it makes parses no
    JSON already parsed (a cold start's second botocore session cost ~50 ms of CPU without it)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFUNCTION")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset_clients()
    try:
        aws.sts()  # the function's own STS client: its model loaded once
        searched = list(aws._session().get_component("data_loader").search_paths)
        broker = aws.broker_session("arn:aws:iam::111111111111:role/BrokerRole", "runcreds-vend")
        aws.broker_session("arn:aws:iam::111111111111:role/BrokerRole", "runcreds-refresh")
        loader = broker.get_component("data_loader")
        assert loader is aws._session().get_component("data_loader")
        assert loader.search_paths == searched  # shared, not added to by each broker session
        parsed: list[str] = []
        read = loader.file_loader.load_file  # what the loader's caches stand in front of

        def reading(path: str) -> Any:
            parsed.append(path)
            return read(path)

        monkeypatch.setattr(loader.file_loader, "load_file", reading)
        broker.create_client("sts", region_name="us-east-1", config=aws.STS_CONFIG)  # as aws.broker_sts makes it
    finally:
        aws.reset_clients()
    assert parsed == []


def test_verification_tells_the_brokers_own_hop_from_the_roles_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attach verification's AssumeRole as the broker: the function role refused BrokerRole is no answer about
    the customer's role (BrokerUnavailableError, transient: a 503 for the attach, no verdict for re-verification),
    never its refusal (a 422 telling the tenant to fix a trust policy that is fine, or `broken` for every
    attachment at once)."""
    hop_refused = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "function-role may not assume BrokerRole"}}, "AssumeRole"
    )

    class HopRefusing:
        """A client of the broker's session whose credentials cannot be refreshed: its first call raises."""

        def assume_role(self, **_: Any) -> Any:
            raise hop_refused

    monkeypatch.setattr(aws, "broker_session", lambda arn, name: BrokerSession(Refreshing(hop_refused)))
    monkeypatch.setattr(aws, "broker_sts", lambda arn, name, region: HopRefusing())
    sts = BrokerSts("arn:aws:iam::111111111111:role/BrokerRole", "runcreds-attach")
    with pytest.raises(BrokerUnavailableError):
        sts.warm("us-east-1")
    with pytest.raises(BrokerUnavailableError):
        sts.assume_role(SPEC, tags=True, source_identity=True, external_id=True)
