"""AWS clients, built lazily and reused across warm invocations.

Every client honours AWS_ENDPOINT_URL, so the same code talks to AWS or to the embedded moto server.
Retries use botocore's standard mode (throttling and 5xx, with backoff). Clients come from botocore
itself: boto3 adds nothing to a client but its import (s3transfer, its resource machinery), which every
cold start would pay.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, cast

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

from runcreds.exceptions import BrokerUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sts import STSClient

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
# AssumeRole against customer roles: a refusal is an answer, so retries are for throttling only.
STS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


@cache
def _session() -> botocore.session.Session:
    return botocore.session.Session()


def _region(session: botocore.session.Session) -> str | None:
    """The session's region (AWS_DEFAULT_REGION, or the profile's), as boto3's `region_name` reads it."""
    return cast("str | None", session.get_config_variable("region"))


@cache
def known_regions() -> frozenset[str]:
    """Every region this botocore knows STS in, in every partition (aws, aws-cn, aws-us-gov, ...)."""
    session = _session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("sts", partition_name=partition)
    )


@cache
def dynamodb() -> DynamoDBClient:
    return cast("DynamoDBClient", _session().create_client("dynamodb", config=CLIENT_CONFIG))


@cache
def kms() -> KMSClient:
    return cast("KMSClient", _session().create_client("kms", config=CLIENT_CONFIG))


@cache
def events() -> EventBridgeClient:
    return cast("EventBridgeClient", _session().create_client("events", config=CLIENT_CONFIG))


@cache
def broker_session(broker_role_arn: str, session_name: str) -> botocore.session.Session:
    """A session acting as the broker role. botocore assumes the role on first use and again shortly
    before the credentials expire, so a warm container makes one AssumeRole an hour for it. No
    credentials to assume it with is the broker's own hop failing: BrokerUnavailableError."""
    base = _session()
    source = base.get_credentials()
    if source is None:
        raise BrokerUnavailableError("no credentials to assume the broker role with")
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=base.create_client,
        source_credentials=source,
        role_arn=broker_role_arn,
        extra_args={"RoleSessionName": session_name[:64]},
    )
    session = botocore.session.Session()
    session._credentials = DeferredRefreshableCredentials(  # type: ignore[attr-defined]
        refresh_using=fetcher.fetch_credentials, method="assume-role"
    )
    region = _region(base)
    if region:
        session.set_config_variable("region", region)
    # The service models the function's session has read already: a loader of its own would read and
    # parse them again for every client made as the broker (in every cold start of the vend and the refresh
    # route).
    session.register_component("data_loader", base.get_component("data_loader"))
    return session


@cache
def broker_sts(broker_role_arn: str, session_name: str, region: str | None) -> STSClient:
    """STS as the broker, against the integration's regional endpoint (AWS_STS_REGIONAL_ENDPOINTS)."""
    session = broker_session(broker_role_arn, session_name)
    client = session.create_client("sts", region_name=region or _region(session), config=STS_CONFIG)
    return cast("STSClient", client)


@cache
def sts(region: str | None = None) -> STSClient:
    client = _session().create_client("sts", region_name=region or _region(_session()), config=STS_CONFIG)
    return cast("STSClient", client)


@cache
def web_identity_sts(region: str | None = None) -> STSClient:
    """STS for AssumeRoleWithWebIdentity: unsigned, the token is the credential (no AWS keys needed)."""
    config = STS_CONFIG.merge(Config(signature_version=UNSIGNED))
    client = _session().create_client("sts", region_name=region or _region(_session()), config=config)
    return cast("STSClient", client)


def reset_clients() -> None:
    """Forget every cached session and client (a test taking on a function's identity in-process)."""
    for cached in (_session, known_regions, dynamodb, kms, events, broker_session, broker_sts, sts, web_identity_sts):
        cached.cache_clear()


def _register_restore_hook() -> None:
    """Under Lambda SnapStart (template parameter SnapStart), forget every client after a restore: their
    connections and any credentials they hold belong to the container the snapshot was taken in."""
    try:
        import snapshot_restore_py  # type: ignore[import-not-found]  # Lambda's Python runtime only
    except ImportError:
        return
    snapshot_restore_py.register_after_restore(reset_clients)


_register_restore_hook()
