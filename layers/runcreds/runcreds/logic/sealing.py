"""What a vend and a refresh both do with a broker-mode session: assume the role as the broker, seal the
credentials under the run's encryption context, and name the session for the audit index."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runcreds import aws
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.faults import classified
from runcreds.models.audit import SessionMapping
from runcreds.models.entities import AssumeRoleSpec, encryption_context_for
from runcreds.models.events import RunPhase
from runcreds.sts_calls import assume_run_role, broker_sts


@dataclass(frozen=True)
class SealedCredentials:
    """A session as the record stores it: only the access key ID and the expiry are in the clear."""

    ciphertext: bytes
    access_key_id: str
    expires_at: datetime  # as STS returned it: STS may grant less than the requested duration


def assume_and_seal(
    broker_role_arn: str, function_name: str, key_arn: str, run: RunPhase, integration_id: str, spec: AssumeRoleSpec
) -> SealedCredentials:
    """AssumeRole as the broker with `spec`, then KMS Encrypt. Raises BrokerUnavailableError when the
    broker's own hop fails, what assume_run_role raises, and KeyUnusableError / TransientAwsError (KMS)."""
    sts = broker_sts(broker_role_arn, function_name, spec.region)
    credentials = assume_run_role(sts, spec)
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
            KeyId=key_arn, Plaintext=plaintext, EncryptionContext=encryption_context_for(run, integration_id)
        )["CiphertextBlob"]
    access_key_id = credentials["AccessKeyId"]
    del plaintext, credentials
    return SealedCredentials(ciphertext=ciphertext, access_key_id=access_key_id, expires_at=expires_at)


def session_mapping_puts(
    sessions: AuditSessionsStore | None,
    retention_days: int,
    run: RunPhase,
    integration_id: str,
    spec: AssumeRoleSpec,
    access_key_id: str | None = None,
) -> list[dict[str, Any]]:
    """The audit index's session mappings (docs/audit.md), written with the record. A worker-mode
    session is known by role and session name and by source identity: the worker opens it."""
    if sessions is None:
        return []
    now = int(time.time())
    mapping = SessionMapping(
        **run.model_dump(),
        integration_id=integration_id,
        role_arn=spec.role_arn,
        session_name=spec.session_name,
        source_identity=spec.source_identity,
        access_key_id=access_key_id,
        mode="worker" if access_key_id is None else "broker",
        issued_at=now,
    )
    return sessions.puts_for(mapping, ttl=now + retention_days * 86400)
