"""The one AssumeRole runcreds makes for a run phase (vending, attach verification and the worker), and its
web-identity form for OIDC integrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from runcreds import aws, faults
from runcreds.exceptions import BrokerUnavailableError
from runcreds.run_scope import AssumeRoleSpec

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import CredentialsTypeDef


def broker_sts(broker_role_arn: str, session_name: str, region: str | None) -> STSClient:
    """STS as the broker role, the broker's own hop made (or its cached session reused) first, so that
    its failure is told apart from the customer role's answer: BrokerUnavailableError, whatever it was."""
    try:
        credentials = aws.broker_session(broker_role_arn, session_name).get_credentials()
        if credentials is None:
            raise BrokerUnavailableError("no credentials to assume the broker role with")
        credentials.get_frozen_credentials()  # assumes BrokerRole when not done (or about to expire)
    except (ClientError, BotoCoreError) as error:
        code = faults.error_code(error) if isinstance(error, ClientError) else type(error).__name__
        raise BrokerUnavailableError(f"the broker could not assume its own role ({code})") from None
    return aws.broker_sts(broker_role_arn, session_name, region)


def assume_run_role(
    client: STSClient,
    spec: AssumeRoleSpec,
    *,
    tags: bool = True,
    source_identity: bool = True,
    external_id: bool = True,
) -> CredentialsTypeDef:
    """AssumeRole as `spec` says (without the external ID: only attach verification's probe). Raises
    RoleRefusedError for a final refusal and TransientAwsError for what a retry may cure. The caller
    decides what to do with the credentials: never log them."""
    extra: dict[str, object] = {}
    if tags:
        extra = {"Tags": spec.tags, "TransitiveTagKeys": spec.transitive_tag_keys}
    if source_identity:
        extra["SourceIdentity"] = spec.source_identity
    if external_id:
        extra["ExternalId"] = spec.external_id
    with faults.classified("sts", "AssumeRole"):
        response = client.assume_role(
            RoleArn=spec.role_arn,
            RoleSessionName=spec.session_name,
            DurationSeconds=spec.duration_seconds,
            **extra,  # type: ignore[arg-type]
        )
    return response["Credentials"]


def assume_run_role_with_web_identity(client: STSClient, spec: AssumeRoleSpec, token: str) -> CredentialsTypeDef:
    """AssumeRoleWithWebIdentity with runcreds' token for an OIDC integration (docs/interface.md §7): the session
    name and duration of `spec`; tags and source identity travel in the token. The client is unsigned.
    Errors as assume_run_role's; neither they nor anything logged here carry the token."""
    with faults.classified("sts", "AssumeRoleWithWebIdentity"):
        response = client.assume_role_with_web_identity(
            RoleArn=spec.role_arn,
            RoleSessionName=spec.session_name,
            WebIdentityToken=token,
            DurationSeconds=spec.duration_seconds,
        )
    return response["Credentials"]
