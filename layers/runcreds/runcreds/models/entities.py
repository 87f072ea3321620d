"""What runcreds stores: integrations, attachments, credential records."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from runcreds.models.run import Access, IntegrationPhase, RunPhase
from runcreds.run_scope import AssumeRoleSpec

ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$"
INTEGRATION_ID_PATTERN = r"^[0-9A-Z]{26}$"
RoleArn = Annotated[str, StringConstraints(max_length=2048, pattern=ROLE_ARN_PATTERN)]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]
IntegrationId = Annotated[str, StringConstraints(pattern=INTEGRATION_ID_PATTERN)]
MIN_DURATION = 900
MAX_DURATION = 43200
DEFAULT_DURATION = 3600
# How runcreds gets into the customer's role: the broker role assumes it (docs/interface.md §3), or runcreds' OIDC
# token is exchanged for its session (§7).
Trust = Literal["broker_role", "oidc"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_integration_id() -> str:
    """A ULID: 48 bits of milliseconds and 80 random bits in Crockford base32, sortable by creation."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Integration(BaseModel):
    model_config = ConfigDict(extra="ignore")

    account: str
    id: str = Field(alias="integration_id")
    name: str
    role_arn: RoleArn
    duration_seconds: int = Field(DEFAULT_DURATION, ge=MIN_DURATION, le=MAX_DURATION)
    region: Region | None = None
    assume_role_on_worker: bool = False
    trust: Trust = "broker_role"
    labels: list[Label] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime | None = None
    # The stacks it is attached to, written in each attach's and detach's transaction: read consistently
    # with the integration, so DELETE and PATCH never miss an attachment the GSI has not shown yet.
    attached_stacks: set[str] = Field(default_factory=set, exclude=True)

    def vend_fields(self) -> dict[str, Any]:
        """What an attachment copies from its integration (see Attachment)."""
        return {name: getattr(self, name) for name in VEND_FIELDS}

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=False)


# The integration fields a vend needs; attachments carry a copy, so PATCH must update every copy.
VEND_FIELDS = ("role_arn", "duration_seconds", "region", "assume_role_on_worker", "trust")


class VerificationStatus(StrEnum):
    OK = "ok"  # the broker assumed the role for every attached access, as a vend would
    BROKEN = "broken"  # the last verification was refused: status_code and status_reason say why
    UNCHECKED = "unchecked"  # worker mode: the worker's identity assumes the role, not the broker


class Attachment(BaseModel):
    """An integration attached to a stack. Carries a copy of the integration fields vending needs, so
    that a vend reads one item per integration instead of two (see docs/decision_log.md)."""

    model_config = ConfigDict(extra="ignore")

    account: str
    stack: str
    integration_id: str
    read: bool
    write: bool
    role_arn: RoleArn
    duration_seconds: int
    region: Region | None = None
    assume_role_on_worker: bool = False
    trust: Trust = "broker_role"
    attached_at: datetime
    status: VerificationStatus = VerificationStatus.UNCHECKED
    status_code: str | None = None
    status_reason: str | None = None
    checked_at: datetime | None = None

    def allows(self, access: Access) -> bool:
        return self.read if access is Access.READ else self.write

    @property
    def accesses(self) -> list[Access]:
        return [access for access in (Access.READ, Access.WRITE) if self.allows(access)]

    @property
    def mode(self) -> str:
        return "worker" if self.assume_role_on_worker else "broker"

    def to_api(self) -> dict[str, Any]:
        body = self.model_dump(
            mode="json",
            include={
                "account",
                "stack",
                "integration_id",
                "read",
                "write",
                "attached_at",
                "status",
                "status_code",
                "status_reason",
                "checked_at",
            },
        )
        return {**body, "mode": self.mode}


class RecordStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    WORKER = "worker"
    FAILED = "failed"
    FINISHED = "finished"


class CredentialRecord(IntegrationPhase):
    """One integration's credentials for one run phase, as the worker finds them. The secret parts
    exist only inside `ciphertext`, encrypted under the run's encryption context."""

    status: RecordStatus
    mode: str | None = None
    # The integration's trust at the vend. Worker mode with "oidc": the worker exchanges a token from the
    # refresh route instead of assuming the role with its own credentials (docs/interface.md §7).
    trust: Trust = "broker_role"
    ciphertext: bytes | None = None
    access_key_id: str | None = None
    expires_at: datetime | None = None
    assume_role: AssumeRoleSpec | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    # Broker mode: 0 as vended, +1 at every refresh (the refresh route's conditional writes count on it);
    # issued_at is when the current generation's session was opened (set by refreshes).
    generation: int = 0
    issued_at: datetime | None = None

    @property
    def run(self) -> RunPhase:
        return RunPhase(account=self.account, stack=self.stack, run_id=self.run_id, phase=self.phase)
