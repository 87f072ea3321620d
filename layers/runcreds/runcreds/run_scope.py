"""How a run is named to AWS: external ID, session name, source identity, session tags (docs/interface.md §3)."""

from __future__ import annotations

import hashlib
import re

from runcreds.models.run import Access, RunPhase

SESSION_NAME_RULE = re.compile(r"^[\w+=,.@-]{2,64}$")
# Tag values may hold letters, digits, spaces and _.:/=+-@ only: a run ID's "," is the one character
# that needs mapping, and ":" never occurs in a run ID, so the mapping is reversible.
_TAG_VALUE_RULE = re.compile(r"^[\w .:/=+\-@]{0,256}$")
_HASHED_PREFIX = 40
_HASH_HEX = 22

TAG_ACCOUNT = "runcreds:account"
TAG_STACK = "runcreds:stack"
TAG_RUN = "runcreds:run"
TAG_PHASE = "runcreds:phase"
TAG_INTEGRATION = "runcreds:integration"
SESSION_TAG_KEYS = (TAG_ACCOUNT, TAG_STACK, TAG_RUN, TAG_PHASE, TAG_INTEGRATION)
# The account name attach verification probes a role with, as another tenant would (docs/attach.md). It
# is a valid slug, so that every pattern a tenant's name can match is tried, and reserved: no route
# serves it, so its external IDs are never a real tenant's.
PROBE_ACCOUNT = "runcreds-probe"


def external_id_for(account: str, integration_id: str, stack: str, access: Access) -> str:
    """`<account>@<integration-id>@<stack>@<read|write>`, as Spacelift passes it."""
    return f"{account}@{integration_id}@{stack}@{access.value}"


def session_name_for(run_id: str) -> str:
    """The run ID itself when STS accepts it; else its first 40 characters, `--` and 22 hex digits of
    the SHA-256 of the whole run ID (64 characters, deterministic, 88 bits against collisions)."""
    if SESSION_NAME_RULE.match(run_id):
        return run_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:_HASH_HEX]
    return f"{run_id[:_HASHED_PREFIX]}--{digest}"


def tag_value(value: str) -> str:
    mapped = value.replace(",", ":")
    if not _TAG_VALUE_RULE.match(mapped):
        raise ValueError(f"{value!r} cannot be carried in a session tag")
    return mapped


def session_tags_for(run: RunPhase, integration_id: str) -> list[dict[str, str]]:
    values = {
        TAG_ACCOUNT: run.account,
        TAG_STACK: run.stack,
        TAG_RUN: run.run_id,
        TAG_PHASE: run.phase.value,
        TAG_INTEGRATION: integration_id,
    }
    return [{"Key": key, "Value": tag_value(value)} for key, value in values.items()]
