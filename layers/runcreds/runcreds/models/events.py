"""Run-phase events consumed and emitted on the runcreds bus (docs/interface.md §1-2)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

RUN_EVENT_SOURCE = "runcreds.runs"
BROKER_EVENT_SOURCE = "runcreds.broker"
PHASE_STARTED = "Run Phase Started"
PHASE_FINISHED = "Run Phase Finished"
CREDENTIALS_READY = "Run Phase Credentials Ready"
CREDENTIALS_FAILED = "Run Phase Credentials Failed"

SLUG_PATTERN = r"^[a-z0-9-]{1,63}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9_.=,+-]{2,128}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
RunId = Annotated[str, StringConstraints(pattern=RUN_ID_PATTERN)]


class Access(StrEnum):
    READ = "read"
    WRITE = "write"

    @property
    def other(self) -> Access:
        return Access.WRITE if self is Access.READ else Access.READ


class Phase(StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    DESTROY = "destroy"
    TASK = "task"
    DRIFT = "drift"

    @property
    def access(self) -> Access:
        return Access.READ if self in (Phase.PLAN, Phase.DRIFT) else Access.WRITE


class RunPhase(BaseModel):
    """Which run phase a credential belongs to; also the worker's query."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: Slug
    stack: Slug
    run_id: RunId
    phase: Phase

    @property
    def run_key(self) -> str:
        return f"{self.account}#{self.stack}#{self.run_id}#{self.phase.value}"


class RunPhaseDetail(RunPhase):
    worker_pool: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class RunPhaseEvent(EventBridgeModel):
    """A run-phase event as EventBridge delivers it to the vend function."""

    source: Literal["runcreds.runs"]
    detail_type: Literal["Run Phase Started", "Run Phase Finished"] = Field(alias="detail-type")
    detail: RunPhaseDetail


class CredentialsReadyDetail(BaseModel):
    account: str
    stack: str
    run_id: str
    phase: Phase
    integration_id: str
    mode: Literal["broker", "worker"]
    expires_at: datetime | None


class CredentialsFailedDetail(BaseModel):
    account: str
    stack: str
    run_id: str
    phase: Phase
    integration_id: str
    reason: str
    code: str
