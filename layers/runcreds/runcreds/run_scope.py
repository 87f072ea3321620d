"""How a run is named to AWS: one integration in one run phase (`RunScope`) gives the external ID, the
session name and source identity, the session tags, the encryption context and the AssumeRole request
(docs/interface.md §3). Vending, refresh, attach verification, re-verification and the worker
all take them from here, so that they agree by construction.

No Lambda dependency: the command line imports it too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from runcreds.models.run import Access, Phase, RunPhase

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
# The run ID attach verification presents, in the phase a vend of each access would be (docs/oidc.md).
VERIFICATION_RUN = "attach-verification"
_VERIFIED_PHASE = {Access.READ: Phase.PLAN, Access.WRITE: Phase.APPLY}


class AssumeRoleSpec(BaseModel):
    """Everything one AssumeRole for a run phase carries, whoever makes the call (RunScope.assume_role_spec
    builds it; a worker-mode record stores it for the worker)."""

    model_config = ConfigDict(frozen=True)

    role_arn: str
    external_id: str
    session_name: str
    duration_seconds: int
    region: str | None
    tags: list[dict[str, str]]

    @property
    def source_identity(self) -> str:
        return self.session_name

    @property
    def transitive_tag_keys(self) -> list[str]:
        return list(SESSION_TAG_KEYS)


def tag_value(value: str) -> str:
    mapped = value.replace(",", ":")
    if not _TAG_VALUE_RULE.match(mapped):
        raise ValueError(f"{value!r} cannot be carried in a session tag")
    return mapped


@dataclass(frozen=True)
class RunScope:
    """One integration in one run phase: the five names (account, stack, run, phase, integration) every
    AWS call for it carries."""

    run: RunPhase
    integration_id: str

    @classmethod
    def verification(cls, account: str, stack: str, integration_id: str, access: Access) -> RunScope:
        """What attach verification presents for `access`: VERIFICATION_RUN in the phase `plan` (read) or
        `apply` (write), so that the role is tried exactly as a vend of that access would try it."""
        run = RunPhase(account=account, stack=stack, run_id=VERIFICATION_RUN, phase=_VERIFIED_PHASE[access])
        return cls(run, integration_id)

    @property
    def access(self) -> Access:
        return self.run.phase.access

    @property
    def external_id(self) -> str:
        """`<account>@<integration-id>@<stack>@<read|write>`, as Spacelift passes it."""
        return f"{self.run.account}@{self.integration_id}@{self.run.stack}@{self.access.value}"

    @property
    def session_name(self) -> str:
        """The run ID itself when STS accepts it; else its first 40 characters, `--` and 22 hex digits of
        the SHA-256 of the whole run ID (64 characters, deterministic, 88 bits against collisions)."""
        run_id = self.run.run_id
        if SESSION_NAME_RULE.match(run_id):
            return run_id
        digest = hashlib.sha256(run_id.encode()).hexdigest()[:_HASH_HEX]
        return f"{run_id[:_HASHED_PREFIX]}--{digest}"

    @property
    def source_identity(self) -> str:
        """The session name: kept through role chaining, so that a later hop is still the run's."""
        return self.session_name

    @property
    def encryption_context(self) -> dict[str, str]:
        """Binds a ciphertext to this run phase and integration: decrypting it under any other fails."""
        return {
            TAG_ACCOUNT: self.run.account,
            TAG_STACK: self.run.stack,
            TAG_RUN: self.run.run_id,
            TAG_PHASE: self.run.phase.value,
            TAG_INTEGRATION: self.integration_id,
        }

    @property
    def session_tags(self) -> list[dict[str, str]]:
        """The encryption context's names as session tags (a run ID's `,` carried as `:`)."""
        return [{"Key": key, "Value": tag_value(value)} for key, value in self.encryption_context.items()]

    def assume_role_spec(self, role_arn: str, duration_seconds: int, region: str | None) -> AssumeRoleSpec:
        """The AssumeRole of this run phase into `role_arn` (its web-identity form uses the same name and
        duration)."""
        return AssumeRoleSpec(
            role_arn=role_arn,
            external_id=self.external_id,
            session_name=self.session_name,
            duration_seconds=duration_seconds,
            region=region,
            tags=self.session_tags,
        )
