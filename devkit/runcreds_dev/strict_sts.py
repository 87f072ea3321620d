"""An STS that says no like AWS does, in front of moto's (which assumes anything).

moto's AssumeRole ignores trust policies, external IDs, session-name rules and duration limits and even
assumes roles that do not exist. This stand-in evaluates (the rules in sts_rules.py and web_identity.py),
before moto answers:
- the parameters as STS validates them (session name, source identity, external ID, 900-43200 s);
- the role's trust policy for the caller: Principal (role, account, service or *), Action, and the
  StringEquals/StringLike/StringNotEquals/StringNotLike conditions on sts:ExternalId,
  sts:SourceIdentity, sts:RoleSessionName, aws:PrincipalArn and aws:RequestTag/<key>; a call that
  sets SourceIdentity also needs sts:SetSourceIdentity, one with tags sts:TagSession;
- explicit Denies in the calling role's own inline policies (aws:ResourceAccount is the role's account):
  BrokerRole denies roles of runcreds' own account. Allows are not evaluated (the tests' own identity
  has no policies);
- the role's MaxSessionDuration and the one-hour cap on role chaining;
- regions where STS is not activated (RegionDisabledException);
- optionally, sessions shorter than asked for (`session_seconds`): the Expiration returned is earlier;
- AssumeRoleWithWebIdentity (unsigned) as STS verifies it (`check_web_identity`, web_identity.py): the token's RS256
  signature against the JWKS its issuer publishes (fetched as STS does: the discovery document at
  `<iss>/.well-known/openid-configuration`, then its `jwks_uri`), `exp`/`nbf`, an IAM OIDC provider for
  `iss` in the role's account whose client IDs hold `aud`, then the trust policy: a `Federated` principal
  naming that provider, the conditions on `<issuer>:aud`/`<issuer>:sub` (iam_policy's evaluator), and
  sts:TagSession / sts:SetSourceIdentity when the token carries tags / a source identity; the role's
  MaxSessionDuration, and no chaining cap (web identity is not chaining);
- optionally, IAM's propagation delay: a role younger than `propagation_delay` seconds is refused with
  the AccessDenied of an untrusted role, as STS refuses a just-created role for a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from moto.sts.models import sts_backends

from runcreds_dev import web_identity
from runcreds_dev.sts_rules import (
    CHAINING_CAP,
    DEFAULT_DISABLED_REGIONS,
    EXTERNAL_ID,
    SESSION_NAME,
    SOURCE_IDENTITY,
    Caller,
    StsRefusal,
    access_key_of,
    actions_of,
    check_max_session,
    identify_caller,
    identity_policies_deny,
    region_of,
    role_of,
    trust_allows,
)
from runcreds_dev.template import ACCOUNT_ID

LOCAL_SERVICE_HEADER = "x-runcreds-local-service"


def _params_list(params: dict[str, str], prefix: str) -> Iterable[tuple[str, str]]:
    index = 1
    while f"{prefix}.member.{index}.Key" in params:
        yield params[f"{prefix}.member.{index}.Key"], params.get(f"{prefix}.member.{index}.Value", "")
        index += 1


class StrictSts:
    """Decides an AssumeRole before moto sees it; `check` raises StsRefusal as STS would."""

    def __init__(self, disabled_regions: Iterable[str] = DEFAULT_DISABLED_REGIONS) -> None:
        self.disabled_regions = set(disabled_regions)
        self.propagation_delay = 0.0  # off; tests switch it on after the stack's own roles exist
        # When set, every session granted expires this many seconds after issue, whatever DurationSeconds
        # asked for (tests of long runs: runcreds must honour the Expiration STS returns).
        self.session_seconds: int | None = None
        self.refusals: list[StsRefusal] = []
        self.web_identity_tokens: list[str] = []  # one per request (an SDK's retry sends its token again)
        self.web_identity_invocations: list[str] = []  # the SDK's invocation ID of each (its retries share it)
        self._faults: list[StsRefusal] = []

    def inject(self, code: str = "Throttling", times: int = 1, status: int = 400) -> None:
        """Answer the next `times` AssumeRole calls with this error (throttling, 5xx) before judging."""
        self._faults.extend(
            StsRefusal(code, "Rate exceeded" if status < 500 else "Internal failure", status) for _ in range(times)
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Injected faults not yet answered (0: every one of them reached STS)."""
        return len(self._faults)

    def check(self, params: dict[str, str], authorization: str, service_header: str | None) -> None:
        if self._faults and not service_header:
            raise self._faults.pop()
        try:
            self._check(params, authorization, service_header)
        except StsRefusal as refusal:
            self.refusals.append(refusal)
            raise

    def _check(self, params: dict[str, str], authorization: str, service_header: str | None) -> None:
        role_arn = params.get("RoleArn", "")
        session_name = params.get("RoleSessionName", "")
        duration = int(params.get("DurationSeconds", "3600") or 3600)
        external_id = params.get("ExternalId")
        source_identity = params.get("SourceIdentity")
        tags = dict(_params_list(params, "Tags"))

        problems = []
        if not SESSION_NAME.match(session_name):
            problems.append(
                f"Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must "
                "satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64"
            )
        if not 900 <= duration <= 43200:
            problems.append(
                f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have "
                "value between 900 and 43200"
            )
        if external_id is not None and not EXTERNAL_ID.match(external_id):
            problems.append(f"Value '{external_id}' at 'externalId' failed to satisfy constraint")
        if source_identity is not None and (
            not SOURCE_IDENTITY.match(source_identity) or source_identity.lower().startswith("aws:")
        ):
            problems.append(f"Value '{source_identity}' at 'sourceIdentity' failed to satisfy constraint")
        if problems:
            count = len(problems)
            raise StsRefusal(
                "ValidationError",
                f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems),
                400,
            )

        region = region_of(authorization) or "us-east-1"
        caller = identify_caller(authorization, service_header)
        if region in self.disabled_regions:
            raise StsRefusal(
                "RegionDisabledException",
                f"STS is not activated in this region for account:{caller.account or ACCOUNT_ID}. Your account "
                "administrator can activate STS in this region using the IAM Console.",
                403,
            )

        role = role_of(role_arn)
        self._identity_deny(caller, actions_of(source_identity, tags), role_arn, authorization)
        context = {
            "sts:RoleSessionName": session_name,
            "aws:PrincipalArn": caller.arn,
            **({"sts:ExternalId": external_id} if external_id is not None else {}),
            **({"sts:SourceIdentity": source_identity} if source_identity is not None else {}),
            **{f"aws:RequestTag/{k}": v for k, v in tags.items()},
        }
        for action in actions_of(source_identity, tags):
            trust = json.loads(unquote(role.assume_role_policy_document)) if role else {}
            if role is None or not self._propagated(role) or not trust_allows(trust, caller, action, context):
                raise StsRefusal(
                    "AccessDenied",
                    f"User: {self._caller_display(caller, authorization)} is not authorized to perform: "
                    f"{action} on resource: {role_arn}",
                    403,
                )

        check_max_session(role, duration)
        if caller.chained and duration > CHAINING_CAP:
            raise StsRefusal(
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
                400,
            )

    def _identity_deny(self, caller: Caller, actions: list[str], role_arn: str, authorization: str) -> None:
        if not caller.chained:
            return
        caller_role = role_of(caller.arn)
        if caller_role is None:
            return
        documents = [json.loads(unquote(d)) for d in caller_role.policies.values()]
        context = {"aws:ResourceAccount": role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""}
        for action in actions:
            if identity_policies_deny(documents, action, context):
                raise StsRefusal(
                    "AccessDenied",
                    f"User: {self._caller_display(caller, authorization)} is not authorized to perform: {action} "
                    f"on resource: {role_arn} with an explicit deny in an identity-based policy",
                    403,
                )

    def exchanges(self, since: int = 0) -> list[str]:
        """The tokens of the web-identity exchanges from request `since` on (an index into
        web_identity_tokens): one per SDK invocation, so that an SDK's retry of an exchange (its token sent
        again, on a loaded machine) is not a second exchange; a request without an invocation ID is one."""
        tokens: dict[str, str] = {}
        requests = zip(self.web_identity_invocations[since:], self.web_identity_tokens[since:], strict=True)
        for index, (invocation, token) in enumerate(requests):
            if tokens.setdefault(invocation or f"#{index}", token) != token:
                raise AssertionError(f"invocation {invocation} sent two different tokens")
        return list(tokens.values())

    def check_web_identity(self, params: dict[str, str], invocation: str = "") -> None:
        # Kept for the tests (claims as minted; no token may reach a log, record or event).
        self.web_identity_tokens.append(params.get("WebIdentityToken", ""))
        self.web_identity_invocations.append(invocation)
        if self._faults:
            raise self._faults.pop()
        try:
            web_identity.judge(params, self._propagated)
        except StsRefusal as refusal:
            self.refusals.append(refusal)
            raise

    @property
    def propagation_delay(self) -> float:
        return self._propagation_delay

    @propagation_delay.setter
    def propagation_delay(self, seconds: float) -> None:
        """Only roles created from now on are delayed: the stack's own roles stay usable."""
        self._propagation_delay = seconds
        self._delay_since = datetime.now(UTC)

    def _propagated(self, role: Any) -> bool:
        if self._propagation_delay <= 0:
            return True
        created = role.create_date if role.create_date.tzinfo else role.create_date.replace(tzinfo=UTC)
        if created < self._delay_since:
            return True
        return bool((datetime.now(UTC) - created).total_seconds() >= self._propagation_delay)

    @staticmethod
    def _caller_display(caller: Caller, authorization: str) -> str:
        if caller.service:
            return caller.service
        access_key = access_key_of(authorization) or ""
        for partitions in list(sts_backends.values()):
            for backend in partitions.values():
                role = backend.get_assumed_role_from_access_key(access_key)
                if role is not None:
                    return str(role.arn)
        return caller.arn
