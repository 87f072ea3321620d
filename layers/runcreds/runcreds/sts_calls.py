"""The one AssumeRole runcreds makes for a run phase (vending, attach verification and the worker), and its
web-identity form for OIDC integrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from runcreds.exceptions import RoleRefusedError, TransientAwsError
from runcreds.models.entities import AssumeRoleSpec

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "IDPCommunicationError",
    }
)


def is_transient(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    return error.response.get("Error", {}).get("Code", "") in _TRANSIENT_CODES or status >= 500


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
    try:
        response = client.assume_role(
            RoleArn=spec.role_arn,
            RoleSessionName=spec.session_name,
            DurationSeconds=spec.duration_seconds,
            **extra,  # type: ignore[arg-type]
        )
    except (ClientError, BotoCoreError) as error:
        raise _refusal_or_transient(error, "AssumeRole") from None
    return response["Credentials"]


def assume_run_role_with_web_identity(client: STSClient, spec: AssumeRoleSpec, token: str) -> CredentialsTypeDef:
    """AssumeRoleWithWebIdentity with runcreds' token for an OIDC integration (CONTRACT §7): the session
    name and duration of `spec`; tags and source identity travel in the token. The client is unsigned.
    Errors as assume_run_role's; neither they nor anything logged here carry the token."""
    try:
        response = client.assume_role_with_web_identity(
            RoleArn=spec.role_arn,
            RoleSessionName=spec.session_name,
            WebIdentityToken=token,
            DurationSeconds=spec.duration_seconds,
        )
    except (ClientError, BotoCoreError) as error:
        raise _refusal_or_transient(error, "AssumeRoleWithWebIdentity") from None
    return response["Credentials"]


def _refusal_or_transient(error: ClientError | BotoCoreError, action: str) -> RoleRefusedError | TransientAwsError:
    if isinstance(error, BotoCoreError):
        return TransientAwsError(f"STS {action} could not be made: {type(error).__name__}")
    details = error.response.get("Error", {})
    code, message = details.get("Code", "Unknown"), details.get("Message", "")
    if is_transient(error):
        return TransientAwsError(f"STS {action} failed transiently ({code})")
    return RoleRefusedError(code, message)
