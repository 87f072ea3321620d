"""The STS calls verification makes, and the evidence a diagnosis is drawn from.

STS sits behind two small protocols (AssumeRole as the broker; a runcreds token exchanged for the role's
session) so that a test can inject a double. An answer is a plain value: None when STS granted the call
(the credentials are dropped unread), or its refusal (RoleRefusedError: STS's code and message).
TransientAwsError (throttling, 5xx) propagates: that is no answer about the role.

Evidence probes lazily: a fact is asked of STS only when a rule (rules.py) needs it, and each request at
most once, so the calls made are exactly those the first matching rule's conditions read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from runcreds import aws
from runcreds.exceptions import RoleRefusedError
from runcreds.logic import oidc
from runcreds.logic.verification.model import CHAINING_CAP_SECONDS, Target
from runcreds.models.run import Access
from runcreds.run_scope import PROBE_ACCOUNT, AssumeRoleSpec, RunScope
from runcreds.sts_calls import assume_run_role, broker_sts

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

MAX_OTHER_STACK_PROBES = 3


class Sts(Protocol):
    """AssumeRole as the broker: all broker-role verification asks of STS."""

    def warm(self, region: str | None) -> None: ...

    def assume_role(
        self, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool, external_id: bool
    ) -> RoleRefusedError | None: ...


class WebIdentitySts(Protocol):
    """A runcreds token for `scope` exchanged for the role's session: all OIDC verification asks of STS."""

    def warm(self, region: str | None) -> None: ...

    def exchange(
        self, scope: RunScope, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool
    ) -> RoleRefusedError | None: ...


@dataclass
class BrokerSts:
    """Sts as the broker role (runcreds.sts_calls.assume_run_role, the vend's own AssumeRole). The broker's
    own hop failing raises BrokerUnavailableError (transient): no answer about the role."""

    broker_role_arn: str
    session_name: str

    def _client(self, region: str | None) -> STSClient:
        # The broker's own hop made first (sts_calls.broker_sts): its failure is BrokerUnavailableError, no
        # answer about the customer's role, which would otherwise be diagnosed from the hop's AccessDenied.
        return broker_sts(self.broker_role_arn, self.session_name, region)

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


@dataclass
class TokenExchange:
    """WebIdentitySts with runcreds' own tokens (runcreds.logic.oidc.exchange, the vend's own exchange)."""

    signing_key_arn: str
    issuer: str

    def warm(self, region: str | None) -> None:
        """Build (and cache) the KMS and STS clients now, before threads share them."""
        aws.kms()
        aws.web_identity_sts(region)

    def exchange(
        self, scope: RunScope, spec: AssumeRoleSpec, *, tags: bool, source_identity: bool
    ) -> RoleRefusedError | None:
        try:
            oidc.exchange(self.signing_key_arn, self.issuer, scope, spec, tags=tags, source_identity=source_identity)
        except RoleRefusedError as refusal:
            return refusal
        return None


@dataclass(frozen=True)
class Variant:
    """The vend's request for the verified access, changed so (None: as verified)."""

    access: Access | None = None
    stack: str | None = None
    account: str | None = None
    tags: bool = True
    source_identity: bool = True
    external_id: bool = True  # broker roles only: False sends none at all
    duration_seconds: int | None = None


AS_VERIFIED = Variant()
BARE = Variant(tags=False, source_identity=False)
ANOTHER_TENANT = Variant(account=PROBE_ACCOUNT)
WITHOUT_EXTERNAL_ID = Variant(external_id=False)


class Evidence:
    """What STS said about one verified request (`refusal`, None for the binding check), and what it says,
    asked once each, about variants of it. Each public method is a fact a rule can require."""

    def __init__(
        self,
        target: Target,
        access: Access,
        refusal: RoleRefusedError | None,
        attempt: Callable[[Variant], RoleRefusedError | None],
        name: Callable[[Variant], str],
        other_stacks: Iterable[str] = (),
    ) -> None:
        self.target, self.access, self.refusal = target, access, refusal
        self._attempt, self.name, self._other_stacks = attempt, name, other_stacks
        self._answers: dict[Variant, RoleRefusedError | None] = {}
        self.matched: Variant | None = None  # the other binding granted_to_another_binding found

    def granted(self, variant: Variant) -> bool:
        if variant not in self._answers:
            self._answers[variant] = self._attempt(variant)
        return self._answers[variant] is None

    def _said(self, code: str, words: str = "") -> bool:
        return self.refusal is not None and self.refusal.code == code and words in self.refusal.sts_message

    # ------------------------------------------------------------ what STS said (no call)
    def access_denied(self) -> bool:
        return self._said("AccessDenied")

    def region_disabled(self) -> bool:
        return self._said("RegionDisabledException")

    def validation_error(self) -> bool:
        return self._said("ValidationError")

    def names_max_session_duration(self) -> bool:
        # STS answers ValidationError for both duration limits; its wording is the only thing telling them apart.
        return self._said("ValidationError", "MaxSessionDuration")

    def no_oidc_provider(self) -> bool:
        return self._said("InvalidIdentityToken", "OpenIDConnect provider")

    def audience_refused(self) -> bool:
        return self._said("InvalidIdentityToken", "audience")

    def over_chaining_cap(self) -> bool:
        return self.target.duration_seconds > CHAINING_CAP_SECONDS

    # ------------------------------------------------------------ what STS says when asked (calls)
    def granted_without_session_actions(self) -> bool:
        return self.granted(BARE)

    def refused_with_tags_alone(self) -> bool:
        return not self.granted(Variant(tags=True, source_identity=False))

    def refused_with_source_identity_alone(self) -> bool:
        return not self.granted(Variant(tags=False, source_identity=True))

    def granted_for_an_hour(self) -> bool:
        return self.granted(Variant(duration_seconds=CHAINING_CAP_SECONDS))

    def granted_to_another_binding(self) -> bool:
        """The role accepts the external ID (or sub) of the other access, or of another stack this
        integration is attached to (at most MAX_OTHER_STACK_PROBES): `matched` says which."""
        stacks = list(self._other_stacks)[:MAX_OTHER_STACK_PROBES]
        candidates = [Variant(access=self.access.other, tags=False, source_identity=False)] + [
            Variant(stack=stack, tags=False, source_identity=False) for stack in stacks if stack != self.target.stack
        ]
        self.matched = next((candidate for candidate in candidates if self.granted(candidate)), None)
        return self.matched is not None

    def granted_to_another_tenant(self) -> bool:
        return self.granted(ANOTHER_TENANT)

    def granted_without_external_id(self) -> bool:
        return self.granted(WITHOUT_EXTERNAL_ID)
