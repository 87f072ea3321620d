"""The envelope EventBridge puts around every event it delivers (its event structure): the fields runcreds'
event models share, with `detail` for each model to type.

runcreds' own, not Powertools' parser models: importing `aws_lambda_powertools.utilities.parser.models`
builds every event model Powertools has (~20 ms of every cold start of the vend and the audit indexer) for
this one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventBridgeEnvelope(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: Any  # each event model types its own
    replay_name: str | None = Field(None, alias="replay-name")  # set when EventBridge replays an archive
