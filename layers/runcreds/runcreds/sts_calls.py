"""The one AssumeRole runcreds makes for a run phase: vending, attach verification and the worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from runcreds.aws import is_transient
from runcreds.exceptions import RoleRefusedError, TransientAwsError
from runcreds.models.entities import AssumeRoleSpec

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import CredentialsTypeDef


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
    except ClientError as error:
        details = error.response.get("Error", {})
        code, message = details.get("Code", "Unknown"), details.get("Message", "")
        if is_transient(error):
            raise TransientAwsError(f"STS AssumeRole failed transiently ({code})") from None
        raise RoleRefusedError(code, message) from None
    except BotoCoreError as error:
        raise TransientAwsError(f"STS AssumeRole could not be made: {type(error).__name__}") from None
    return response["Credentials"]
