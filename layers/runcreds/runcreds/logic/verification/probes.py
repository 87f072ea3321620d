"""The STS calls verification makes, behind a small protocol so that a test can inject a double.

An answer is a plain value: None when STS granted the AssumeRole (the credentials are dropped unread), or
its refusal (RoleRefusedError: STS's code and message). TransientAwsError (throttling, 5xx) propagates:
that is no answer about the role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from runcreds import aws
from runcreds.exceptions import RoleRefusedError
from runcreds.run_scope import AssumeRoleSpec
from runcreds.sts_calls import assume_run_role

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient


class Sts(Protocol):
    """AssumeRole as the broker: all verification asks of STS."""

    def warm(self, region: str | None) -> None: ...

    def assume_role(
        self, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool, external_id: bool
    ) -> RoleRefusedError | None: ...


@dataclass
class BrokerSts:
    """Sts as the broker role (runcreds.sts_calls.assume_run_role, the vend's own AssumeRole)."""

    broker_role_arn: str
    session_name: str

    def _client(self, region: str | None) -> STSClient:
        return aws.broker_sts(self.broker_role_arn, self.session_name, region)

    def warm(self, region: str | None) -> None:
        """Build (and cache) the STS client for `region` now, before threads share it."""
        self._client(region)

    def assume_role(
        self, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool, external_id: bool
    ) -> RoleRefusedError | None:
        try:
            assume_run_role(
                self._client(spec.region), spec, tags=tags, source_identity=source_identity, external_id=external_id
            )
        except RoleRefusedError as refusal:
            return refusal
        return None
