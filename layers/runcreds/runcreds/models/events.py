"""Run-phase events consumed and emitted on the runcreds bus (docs/interface.md §1-2)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError

from runcreds.exceptions import InvalidRunEventError
from runcreds.models import problems
from runcreds.models.eventbridge import EventBridgeEnvelope
from runcreds.models.run import Phase, RunPhase

RUN_EVENT_SOURCE = "runcreds.runs"
BROKER_EVENT_SOURCE = "runcreds.broker"
PHASE_STARTED = "Run Phase Started"
PHASE_FINISHED = "Run Phase Finished"
CREDENTIALS_READY = "Run Phase Credentials Ready"
CREDENTIALS_FAILED = "Run Phase Credentials Failed"


class RunPhaseDetail(RunPhase):
    worker_pool: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class RunPhaseEvent(EventBridgeEnvelope):
    """A run-phase event as EventBridge delivers it to the vend function."""

    source: Literal["runcreds.runs"]
    detail_type: Literal["Run Phase Started", "Run Phase Finished"] = Field(alias="detail-type")
    detail: RunPhaseDetail


def parse_run_event(event: dict[str, Any]) -> RunPhaseEvent:
    """The run-phase event, or InvalidRunEventError naming each problem (no AWS call is made first)."""
    try:
        return RunPhaseEvent.model_validate(event)
    except ValidationError as error:  # a validator's ValueError is one too
        raise InvalidRunEventError(f"invalid run-phase event: {problems(error, 'event')}") from None


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
