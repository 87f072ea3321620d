"""Request bodies of the HTTP API (CONTRACT §4)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from runcreds.models.entities import DEFAULT_DURATION, MAX_DURATION, MIN_DURATION, Label, Region, RoleArn

AccountPath = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,63}$")]


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
    role_arn: RoleArn
    duration_seconds: int = Field(DEFAULT_DURATION, ge=MIN_DURATION, le=MAX_DURATION)
    region: Region | None = None
    assume_role_on_worker: bool = False
    labels: list[Label] = Field(default_factory=list, max_length=50)


class AttachRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    read: bool
    write: bool

    @model_validator(mode="after")
    def _some_access(self) -> AttachRequest:
        if not (self.read or self.write):
            raise ValueError("at least one of read and write must be true")
        return self
