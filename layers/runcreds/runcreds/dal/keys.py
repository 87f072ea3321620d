"""Every key runcreds writes to or queries its tables by, and each key's format (the tables are declared in
template.yaml; docs/audit.md describes the audit tables).

- Attachments: `stack_key` + `integration_id`; GSI `by-integration` on `integration_key`.
- Credentials: one partition per run phase, `run_key` = `phase_key(run)`; sort key `integration_id`, the
  integration's record, or PHASE_ITEM, the phase's own state.
- Audit sessions: `session_key` (one of the three below) + `scope`, the run phase and integration.
- Audit index: `run_key` = `audit_run_key(...)` (one partition per run, all its phases) + `event_key`;
  GSI `by-stack` on `stack_key` with the same sort key.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runcreds.models.run import IntegrationPhase, RunPhase

# The credentials table's sort key of the phase item: integration IDs are ULIDs ([0-9A-Z]{26}), so it
# can never collide with a record's.
PHASE_ITEM = "#phase"
# Event times in the audit index, UTC to the second: they sort as text in time order.
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EVENT_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z#[^\s]{1,128}$")


# ---------------------------------------------------------------------- attachments (and the audit GSI)
def stack_key(account: str, stack: str) -> str:
    """`<account>#<stack>`: the attachments table's partition and the audit index's `by-stack` GSI."""
    return f"{account}#{stack}"


def integration_key(account: str, integration_id: str) -> str:
    return f"{account}#{integration_id}"


def attachment_key(account: str, stack: str, integration_id: str) -> dict[str, str]:
    return {"stack_key": stack_key(account, stack), "integration_id": integration_id}


# ---------------------------------------------------------------------- credentials
def phase_key(run: RunPhase) -> str:
    """`<account>#<stack>#<run id>#<phase>`: the partition of one run phase's records and phase item."""
    return f"{run.account}#{run.stack}#{run.run_id}#{run.phase.value}"


def record_key(run: RunPhase, integration_id: str) -> dict[str, str]:
    """The key of an integration's credential record (or, with PHASE_ITEM, of the phase item)."""
    return {"run_key": phase_key(run), "integration_id": integration_id}


# ---------------------------------------------------------------------- audit sessions
def access_key_key(access_key_id: str) -> str:
    return f"akid#{access_key_id}"


def role_session_key(aws_account_id: str, role_name: str, session_name: str) -> str:
    # IAM role names are unique per account whatever their case; CloudTrail may spell them either way.
    return f"role#{aws_account_id}#{role_name.lower()}#{session_name}"


def source_identity_key(source_identity: str) -> str:
    return f"si#{source_identity}"


def session_scope(mapping: IntegrationPhase) -> str:
    """`<account>#<stack>#<run id>#<phase>#<integration id>`: the sort key of a session mapping."""
    return f"{mapping.account}#{mapping.stack}#{mapping.run_id}#{mapping.phase.value}#{mapping.integration_id}"


# ---------------------------------------------------------------------- audit index
def audit_run_key(account: str, run_id: str) -> str:
    """`<account>#<run id>`: the audit index's partition of one run, every phase of it."""
    return f"{account}#{run_id}"


def event_time_key(when: datetime) -> str:
    """A time as the index's event keys start with it (and its `event_time` holds it)."""
    return when.astimezone(UTC).strftime(EVENT_TIME_FORMAT)


def event_key(when: datetime, event_id: str) -> str:
    """`<event time>#<event ID>`: a run's events sort by time; a duplicate delivery overwrites itself."""
    return f"{event_time_key(when)}#{event_id}"
