"""What a vend and a refresh both do with a broker-mode session: assume the role as the broker, seal the
credentials under the run's encryption context, and name the session for the audit index."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runcreds import aws
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.exceptions import RoleRefusedError
from runcreds.faults import classified
from runcreds.logic import oidc
from runcreds.models.audit import SessionMapping
from runcreds.run_scope import AssumeRoleSpec, RunScope
from runcreds.settings import AttachSettings, VendSettings
from runcreds.sts_calls import assume_run_role, broker_sts

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import CredentialsTypeDef


@dataclass(frozen=True)
class SealedCredentials:
    """A session as the record stores it: only the access key ID and the expiry are in the clear."""

    ciphertext: bytes
    access_key_id: str
    expires_at: datetime  # as STS returned it: STS may grant less than the requested duration


def oidc_signer(settings: VendSettings | AttachSettings) -> tuple[str, str]:
    """The signing key and issuer URL an OIDC token needs, or the refusal of a deployment without them."""
    if not settings.oidc_signing_key_arn or not settings.oidc_issuer_url:
        raise RoleRefusedError("OidcNotConfigured", "this runcreds deployment has no OIDC signing key or issuer URL")
    return settings.oidc_signing_key_arn, settings.oidc_issuer_url


def open_session(
    settings: VendSettings | AttachSettings, scope: RunScope, spec: AssumeRoleSpec, trust: str
) -> CredentialsTypeDef:
    """The role's session for the run phase: assumed by the broker role (docs/interface.md §3), or, for an OIDC
    integration (§7), exchanged for a token minted for this call (no role chaining: up to the role's
    MaxSessionDuration). Both raise RoleRefusedError / TransientAwsError alike; the broker's own hop
    failing raises BrokerUnavailableError."""
    if trust == "oidc":
        key_arn, issuer = oidc_signer(settings)
        return oidc.exchange(key_arn, issuer, scope, spec)
    sts = broker_sts(settings.broker_role_arn, settings.function_name, spec.region)
    return assume_run_role(sts, spec)


def assume_and_seal(
    settings: VendSettings | AttachSettings,
    scope: RunScope,
    spec: AssumeRoleSpec,
    trust: str = "broker_role",
) -> SealedCredentials:
    """Open the session (`open_session`), then KMS Encrypt it under the run's context. Raises what
    open_session raises, and KeyUnusableError / TransientAwsError from KMS."""
    credentials = open_session(settings, scope, spec, trust)
    expires_at: datetime = credentials["Expiration"]
    plaintext = json.dumps(
        {
            "AccessKeyId": credentials["AccessKeyId"],
            "SecretAccessKey": credentials["SecretAccessKey"],
            "SessionToken": credentials["SessionToken"],
            "Expiration": expires_at.isoformat(),
        }
    ).encode()
    with classified("kms", "Encrypt"):
        ciphertext = aws.kms().encrypt(
            KeyId=settings.credentials_key_arn,
            Plaintext=plaintext,
            EncryptionContext=scope.encryption_context,
        )["CiphertextBlob"]
    access_key_id = credentials["AccessKeyId"]
    del plaintext, credentials
    return SealedCredentials(ciphertext=ciphertext, access_key_id=access_key_id, expires_at=expires_at)


def session_mapping_puts(
    sessions: AuditSessionsStore | None,
    retention_days: int,
    scope: RunScope,
    spec: AssumeRoleSpec,
    access_key_id: str | None = None,
) -> list[dict[str, Any]]:
    """The audit index's session mappings (docs/audit.md), written with the record. A worker-mode
    session is known by role and session name and by source identity: the worker opens it."""
    if sessions is None:
        return []
    now = int(time.time())
    mapping = SessionMapping(
        **scope.run.model_dump(),
        integration_id=scope.integration_id,
        role_arn=spec.role_arn,
        session_name=spec.session_name,
        source_identity=spec.source_identity,
        access_key_id=access_key_id,
        mode="worker" if access_key_id is None else "broker",
        issued_at=now,
    )
    return sessions.puts_for(mapping, ttl=now + retention_days * 86400)
