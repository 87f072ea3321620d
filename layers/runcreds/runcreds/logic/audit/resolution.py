"""Which run a CloudTrail record belongs to.

Each record is resolved to the run session runcreds issued, through the session mappings written at
vend time (runcreds.dal.audit_sessions), trying in turn:
1. `userIdentity.accessKeyId` (the broker-mode session itself);
2. `userIdentity.arn`, an assumed-role ARN: AWS account, role name and session name;
3. `userIdentity.sessionContext.sourceIdentity` (kept by AWS through role chaining);
4. for sts:AssumeRole and sts:AssumeRoleWithWebIdentity records (OIDC integrations, logged by the role's
   account as a WebIdentityUser: no session of its own), the access key of the session it opened
   (`responseElements.credentials.accessKeyId`), then `requestParameters.roleArn` + `roleSessionName`,
   then `sourceIdentity`.
Who may speak for a session (EventBridge sets the envelope's `account`; nobody can forward another
account's CloudTrail): the AWS account of the mapping's role, i.e. an account the run was vended into,
for 1-3; for 4 only a call that succeeded (a denied AssumeRole names whatever its caller typed), made
in that account or, in runcreds' own account, by the broker role. A source identity is anybody's to set
where sts:SetSourceIdentity is allowed, so the account is what makes it the run's. A record that names
a session and fails these is dropped and counted (`UntrustedRecordsDropped`); one that names no session
runcreds issued too (`ForeignSessionsDropped`); neither is indexed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from aws_lambda_powertools.metrics import MetricUnit

from runcreds.dal.audit_sessions import AuditSessionsStore, role_name_of
from runcreds.dal.keys import access_key_key, role_session_key, source_identity_key
from runcreds.models.audit import CloudTrailDetail, SessionMapping
from runcreds.observability import logger, metrics

# A mapping fetched at T answers for events before T - skew: any session that made a call before then
# was issued (and its mapping written, in the vend's transaction) before T.
CLOCK_SKEW_SECONDS = 300
# A session's calls come after its issue; `issued_at` is taken (in whole seconds) just after STS answered,
# so its own AssumeRole record may precede it by the call's latency. Wider would hand a plan's late calls to
# an apply issued moments after them.
ISSUE_SKEW_SECONDS = 5


@dataclass
class Resolution:
    mapping: SessionMapping
    role_arn: str
    session_name: str
    source_identity: str | None


class Dropped(StrEnum):
    """Why a record is not indexed; the value is the metric that counts it."""

    FOREIGN = "ForeignSessionsDropped"  # it names no session runcreds issued (before the event)
    # It names one, but its account, caller or outcome may not speak for it (whatever else it names).
    UNTRUSTED = "UntrustedRecordsDropped"


@dataclass
class _Cached:
    fetched_at: float
    mappings: list[SessionMapping]


@dataclass
class SessionResolver:
    store: AuditSessionsStore
    own_account: str | None
    broker_role_arn: str | None
    clock: Callable[[], float] = time.time
    _cache: dict[str, _Cached] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The broker's sessions, as CloudTrail names their caller: assumed-role/<name>/<session> in its account.
        arn = self.broker_role_arn
        self._broker = (arn.split(":")[4], role_name_of(arn).lower()) if arn and arn.count(":") >= 5 else None

    def _mappings(self, key: str, event_time: float) -> list[SessionMapping]:
        cached = self._cache.get(key)
        # An access key ID belongs to one session for ever; other keys gain mappings as runs go on.
        if cached and (
            (key.startswith("akid#") and cached.mappings) or event_time < cached.fetched_at - CLOCK_SKEW_SECONDS
        ):
            return cached.mappings
        fetched_at = self.clock()
        mappings = self.store.mappings(key)
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[key] = _Cached(fetched_at, mappings)
        return mappings

    def _choose(
        self, key: str, detail: CloudTrailDetail, trusted: Callable[[SessionMapping], bool]
    ) -> SessionMapping | Dropped:
        event_time = detail.event_time.timestamp()
        named = [m for m in self._mappings(key, event_time) if m.issued_at <= event_time + ISSUE_SKEW_SECONDS]
        candidates = [m for m in named if trusted(m)]
        if len({(m.account, m.run_id) for m in candidates}) > 1:
            metrics.add_metric(name="AmbiguousSessions", unit=MetricUnit.Count, value=1)
            logger.warning("a session key names several runs: not indexed", extra={"session_key": key})
            return Dropped.FOREIGN
        if not candidates:
            return Dropped.UNTRUSTED if named else Dropped.FOREIGN
        return max(candidates, key=lambda m: m.issued_at)

    def _by_broker(self, arn: str | None) -> bool:
        assumed = _assumed_role(arn)
        return assumed is not None and self._broker == (assumed[0], assumed[1].lower())

    def resolve(self, detail: CloudTrailDetail, source_account: str) -> Resolution | Dropped:
        identity = detail.user_identity
        context = identity.session_context
        source_identity = context.source_identity if context else None
        assumed = _assumed_role(identity.arn)
        issuer_arn = context.session_issuer.arn if context and context.session_issuer else None
        session_name = assumed[2] if assumed else None
        keys = []
        if identity.access_key_id:
            keys.append(access_key_key(identity.access_key_id))
        if assumed:
            keys.append(role_session_key(*assumed))
        if source_identity:
            keys.append(source_identity_key(source_identity))
        verdict = Dropped.FOREIGN
        for key in keys:
            # The caller is the run's session, or a session chained from it: in an account it was vended into.
            found = self._choose(key, detail, lambda m: m.aws_account_id == source_account)
            if isinstance(found, SessionMapping):
                role_arn = issuer_arn or _role_arn_of(assumed) or found.role_arn
                return Resolution(found, role_arn, session_name or found.session_name, source_identity)
            if found is Dropped.UNTRUSTED:
                verdict = found
        if detail.is_assume_role:
            by_request = self._resolve_assume_role(detail, source_account)
            if isinstance(by_request, Resolution) or by_request is Dropped.UNTRUSTED:
                return by_request
        return verdict

    def _resolve_assume_role(self, detail: CloudTrailDetail, source_account: str) -> Resolution | Dropped:
        """The AssumeRole that opened a run's session, known by what it asked for: anyone may ask for
        anything, so only a call that succeeded counts, in the role's account or by runcreds' broker."""
        params = detail.request_parameters or {}
        role_arn, session = params.get("roleArn"), params.get("roleSessionName")
        source_identity = params.get("sourceIdentity")
        succeeded = not detail.error_code
        keys = []
        # The session it opened, exactly (a phase issued moments later shares role and session name);
        # a web identity's source identity is the token's claim, in the response only.
        issued_key = detail.response_value("credentials", "accessKeyId") if succeeded else None
        if issued_key:
            keys.append(access_key_key(issued_key))
        if not isinstance(source_identity, str) and succeeded:
            source_identity = detail.response_value("sourceIdentity")
        if isinstance(role_arn, str) and isinstance(session, str) and role_arn.count(":") >= 5:
            keys.append(role_session_key(role_arn.split(":")[4], role_name_of(role_arn), session))
        if isinstance(source_identity, str):
            keys.append(source_identity_key(source_identity))
        # Only an AssumeRole has the broker as its caller: an exchange's is the token (WebIdentityUser).
        by_broker = (
            detail.event_name == "AssumeRole"
            and source_account == self.own_account
            and self._by_broker(detail.user_identity.arn)
        )

        def trusted(m: SessionMapping) -> bool:
            return succeeded and (m.aws_account_id == source_account or by_broker)

        verdict = Dropped.FOREIGN
        for key in keys:
            found = self._choose(key, detail, trusted)
            if isinstance(found, SessionMapping):
                return Resolution(
                    found,
                    role_arn if isinstance(role_arn, str) else found.role_arn,
                    session if isinstance(session, str) else found.session_name,
                    source_identity if isinstance(source_identity, str) else None,
                )
            if found is Dropped.UNTRUSTED:
                verdict = found
        return verdict


def _assumed_role(arn: str | None) -> tuple[str, str, str] | None:
    """`arn:aws:sts::111122223333:assumed-role/RoleName/session` → (account, role name, session)."""
    if not arn or ":assumed-role/" not in arn:
        return None
    parts = arn.split(":", 5)
    path = parts[5].split("/") if len(parts) == 6 else []
    if len(path) < 3 or not parts[4]:
        return None
    return parts[4], path[1], "/".join(path[2:])


def _role_arn_of(assumed: tuple[str, str, str] | None) -> str | None:
    return f"arn:aws:iam::{assumed[0]}:role/{assumed[1]}" if assumed else None
