"""A run phase as runcreds names it: the tenant's account and stack, the run, the phase and its access.

No Lambda dependency: the server, the command line and the development kit all import it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

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


class IntegrationPhase(BaseModel):
    """What a credential record and a session mapping both belong to: one integration in one run phase."""

    model_config = ConfigDict(extra="ignore")

    account: str
    stack: str
    run_id: str
    phase: Phase
    integration_id: str
