"""An STS that says no like AWS does, in front of moto's (which assumes anything).

moto's AssumeRole ignores trust policies, external IDs, session-name rules and duration limits and even
assumes roles that do not exist. This stand-in evaluates, before moto answers:
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
- AssumeRoleWithWebIdentity (unsigned) as STS verifies it (`check_web_identity`): the token's RS256
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

import fnmatch
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import urllib3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from runcreds.logic.oidc import (
    DISCOVERY_PATH,
    SOURCE_IDENTITY_CLAIM,
    TAGS_CLAIM,
    b64url_decode,
    issuer_host_path,
)
from runcreds_dev import iam_policy
from runcreds_dev.template import ACCOUNT_ID, PARTITION

LOCAL_SERVICE_HEADER = "x-runcreds-local-service"
SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
SOURCE_IDENTITY = re.compile(r"^[\w+=,.@-]{2,64}$")
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
CHAINING_CAP = 3600
# Opt-in regions: STS is not activated there until an administrator does it.
DEFAULT_DISABLED_REGIONS = frozenset({"af-south-1", "ap-east-1", "me-south-1", "eu-south-1", "ap-southeast-3"})


@dataclass(frozen=True)
class Caller:
    arn: str  # the ARN a trust policy names: a role, a user, or a service principal
    account: str
    chained: bool  # the caller holds role credentials: AWS caps the new session at one hour
    service: str | None = None


@dataclass(frozen=True)
class StsRefusal(Exception):
    code: str
    message: str
    status: int

    def as_xml(self) -> bytes:
        kind = "Sender" if self.status < 500 else "Receiver"
        return (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>{kind}</Type><Code>{self.code}</Code><Message>{_xml(self.message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _access_key_of(authorization: str) -> str | None:
    match = re.search(r"Credential=([^/]+)/", authorization)
    return match.group(1) if match else None


def _region_of(authorization: str) -> str | None:
    match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", authorization)
    return match.group(1) if match else None


def identify_caller(authorization: str, service_header: str | None) -> Caller:
    if service_header:
        return Caller(arn=service_header, account="", chained=False, service=service_header)
    access_key = _access_key_of(authorization) or ""
    for account_id, partitions in list(sts_backends.items()):
        for backend in partitions.values():
            role = backend.get_assumed_role_from_access_key(access_key)
            if role is not None:
                role_name = role.role_arn.split("/")[-1]
                return Caller(
                    arn=f"arn:{PARTITION}:iam::{role.account_id}:role/{role_name}",
                    account=role.account_id,
                    chained=True,
                )
        for iam_backend in iam_backends.get(account_id, {}).values():
            user = iam_backend.get_user_from_access_key_id(access_key)
            if user is not None:
                return Caller(arn=user.arn, account=user.account_id, chained=False)
    # moto's own default identity for credentials it does not know (AWS_ACCESS_KEY_ID=testing).
    return Caller(arn=f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/moto", account=ACCOUNT_ID, chained=False)


def _principal_matches(principal: Any, caller: Caller) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if caller.service:
        return caller.service in _as_list(principal.get("Service", []))
    for entry in _as_list(principal.get("AWS", [])):
        if entry == "*" or entry == caller.arn:
            return True
        # An account (root ARN or bare ID) delegates to the identity policies of that account.
        if entry in (caller.account, f"arn:{PARTITION}:iam::{caller.account}:root"):
            return True
    return False


def _action_matches(actions: Any, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(actions))


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda p, v: p == v, False),
    "StringLike": (_like, False),
    "StringNotEquals": (lambda p, v: p != v, True),
    "StringNotLike": (lambda p, v: not _like(p, v), True),
}


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        if operator not in _OPERATORS:
            return False  # an operator we do not model never grants access
        compare, negated = _OPERATORS[operator]
        for key, expected in tests.items():
            value = (
                context.get(key)
                if not key.lower().startswith("aws:requesttag/")
                else context.get("aws:RequestTag/" + key.split("/", 1)[1])
            )
            if value is None:
                if negated:
                    continue
                return False
            patterns = [str(p) for p in _as_list(expected)]
            if negated:
                if not all(compare(p, value) for p in patterns):
                    return False
            elif not any(compare(p, value) for p in patterns):
                return False
    return True


def trust_allows(document: dict[str, Any], caller: Caller, action: str, context: dict[str, str]) -> bool:
    allowed = False
    for statement in _as_list(document.get("Statement", [])):
        if "Principal" not in statement or not _principal_matches(statement["Principal"], caller):
            continue
        if not _action_matches(statement.get("Action", []), action):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


def _applicable(documents: Iterable[dict[str, Any]], action: str, context: dict[str, str]) -> set[str]:
    """The effects of the identity-policy statements that apply to `action` (on a role) in this context."""
    return {
        str(statement.get("Effect"))
        for document in documents
        for statement in _as_list(document.get("Statement", []))
        if _action_matches(statement.get("Action", []), action)
        and _conditions_hold(statement.get("Condition", {}), context)
    }


def identity_policies_allow(documents: Iterable[dict[str, Any]], action: str, context: dict[str, str]) -> bool:
    """Whether a principal's identity policies allow `action` (on a role, `Resource` arn:*:iam::*:role/*)
    in this request context: some Allow applies and no Deny does. Used on the template's BrokerRole."""
    effects = _applicable(documents, action, context)
    return "Allow" in effects and "Deny" not in effects


def identity_policies_deny(documents: Iterable[dict[str, Any]], action: str, context: dict[str, str]) -> bool:
    return "Deny" in _applicable(documents, action, context)


def actions_of(source_identity: str | None, tags: dict[str, str]) -> list[str]:
    """The actions an AssumeRole call needs: SetSourceIdentity and TagSession when it sets them."""
    return [
        "sts:AssumeRole",
        *(["sts:SetSourceIdentity"] if source_identity is not None else []),
        *(["sts:TagSession"] if tags else []),
    ]


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
        self.web_identity_tokens: list[str] = []
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

        region = _region_of(authorization) or "us-east-1"
        caller = identify_caller(authorization, service_header)
        if region in self.disabled_regions:
            raise StsRefusal(
                "RegionDisabledException",
                f"STS is not activated in this region for account:{caller.account or ACCOUNT_ID}. Your account "
                "administrator can activate STS in this region using the IAM Console.",
                403,
            )

        role = self._role(role_arn)
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

        assert role is not None
        if duration > int(role.max_session_duration):
            raise StsRefusal(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
                400,
            )
        if caller.chained and duration > CHAINING_CAP:
            raise StsRefusal(
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
                400,
            )

    def _identity_deny(self, caller: Caller, actions: list[str], role_arn: str, authorization: str) -> None:
        if not caller.chained:
            return
        caller_role = self._role(caller.arn)
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

    def check_web_identity(self, params: dict[str, str]) -> None:
        # Kept for the tests (claims as minted; no token may reach a log, record or event).
        self.web_identity_tokens.append(params.get("WebIdentityToken", ""))
        if self._faults:
            raise self._faults.pop()
        try:
            self._check_web_identity(params)
        except StsRefusal as refusal:
            self.refusals.append(refusal)
            raise

    def _check_web_identity(self, params: dict[str, str]) -> None:
        role_arn = params.get("RoleArn", "")
        session_name = params.get("RoleSessionName", "")
        duration = int(params.get("DurationSeconds", "3600") or 3600)
        problems = []
        if not SESSION_NAME.match(session_name):
            problems.append(f"Value '{session_name}' at 'roleSessionName' failed to satisfy constraint")
        if not 900 <= duration <= 43200:
            problems.append(f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint")
        if problems:
            raise StsRefusal(
                "ValidationError", f"{len(problems)} validation error(s) detected: " + "; ".join(problems), 400
            )

        header, claims, signing_input, signature = _parse_jwt(params.get("WebIdentityToken", ""))
        issuer = str(claims.get("iss", ""))
        role = self._role(role_arn)
        role_account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        provider = _oidc_provider(role_account, issuer)
        if provider is None:
            raise StsRefusal(
                "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}", 400
            )
        audiences = [str(a) for a in _as_list(claims.get("aud", []))]
        if not set(audiences) & set(provider.client_id_list):
            raise StsRefusal("InvalidIdentityToken", "Incorrect token audience", 400)
        _verify_signature(issuer, header, signing_input, signature)
        now = datetime.now(UTC).timestamp()
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise StsRefusal(
                "ExpiredTokenException",
                f"Token expired: current date/time {int(now)} must be before the expiration date/time "
                f"{claims.get('exp')}",
                400,
            )
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 60:
            raise StsRefusal("InvalidIdentityToken", "Token is not yet valid (nbf)", 400)

        tags_claim = claims.get(TAGS_CLAIM) or {}
        tags = {k: str(_as_list(v)[0]) for k, v in (tags_claim.get("principal_tags") or {}).items()}
        source_identity = claims.get(SOURCE_IDENTITY_CLAIM)
        if source_identity is not None and not SOURCE_IDENTITY.match(str(source_identity)):
            raise StsRefusal("InvalidIdentityToken", "The source identity claim is not valid", 400)
        prefix = issuer_host_path(issuer)
        context: dict[str, str | list[str]] = {
            f"{prefix}:aud": audiences,
            f"{prefix}:sub": str(claims.get("sub", "")),
            "sts:RoleSessionName": session_name,
            "aws:TagKeys": list(tags),
            **({"sts:SourceIdentity": str(source_identity)} if source_identity is not None else {}),
            **{f"aws:RequestTag/{k}": v for k, v in tags.items()},
        }
        actions = [
            "sts:AssumeRoleWithWebIdentity",
            *(["sts:SetSourceIdentity"] if source_identity is not None else []),
            *(["sts:TagSession"] if tags else []),
        ]
        trust = json.loads(unquote(role.assume_role_policy_document)) if role else {}
        for action in actions:
            if (
                role is None
                or not self._propagated(role)
                or not _federated_trust_allows(trust, provider.arn, action, context)
            ):
                raise StsRefusal("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
        assert role is not None
        if duration > int(role.max_session_duration):
            raise StsRefusal(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
                400,
            )

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
    def _role(role_arn: str) -> Any:
        match = re.match(r"^arn:[\w-]+:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$", role_arn)
        if not match:
            return None
        account, name = match.groups()
        for backend in iam_backends.get(account, {}).values():
            try:
                return backend.get_role(name)
            except Exception:
                return None
        return None

    @staticmethod
    def _caller_display(caller: Caller, authorization: str) -> str:
        if caller.service:
            return caller.service
        access_key = _access_key_of(authorization) or ""
        for partitions in list(sts_backends.values()):
            for backend in partitions.values():
                role = backend.get_assumed_role_from_access_key(access_key)
                if role is not None:
                    return str(role.arn)
        return caller.arn


# ---------------------------------------------------------------------- web identity
_HTTP = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=10), retries=False)


def _parse_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    try:
        encoded_header, encoded_claims, encoded_signature = token.split(".")
        header = json.loads(b64url_decode(encoded_header))
        claims = json.loads(b64url_decode(encoded_claims))
        signature = b64url_decode(encoded_signature)
    except ValueError:
        raise StsRefusal("InvalidIdentityToken", "The web identity token is not a valid JWT", 400) from None
    if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
        raise StsRefusal("InvalidIdentityToken", "The web identity token is not a valid RS256 JWT", 400)
    return header, claims, f"{encoded_header}.{encoded_claims}".encode(), signature


def _oidc_provider(account: str, issuer: str) -> Any:
    wanted = issuer_host_path(issuer)
    for backend in iam_backends.get(account, {}).values():
        for provider in backend.open_id_providers.values():
            if provider.url.rstrip("/") == wanted:
                return provider
    return None


def _fetch_json(url: str) -> Any:
    try:
        response = _HTTP.request("GET", url)
    except urllib3.exceptions.HTTPError:
        raise StsRefusal("IDPCommunicationError", f"Couldn't reach the identity provider at {url}", 400) from None
    if response.status != 200:
        raise StsRefusal(
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider, please reference "
            "AssumeRoleWithWebIdentity documentation for requirements",
            400,
        )
    return json.loads(response.data)


def _verify_signature(issuer: str, header: dict[str, Any], signing_input: bytes, signature: bytes) -> None:
    """As STS: the issuer's discovery document (its `issuer` must be the token's), then its JWKS."""
    discovery = _fetch_json(issuer + DISCOVERY_PATH)
    if discovery.get("issuer") != issuer:
        raise StsRefusal("InvalidIdentityToken", "The issuer of the discovery document is not the token's", 400)
    keys = _fetch_json(str(discovery.get("jwks_uri", ""))).get("keys", [])
    key = next((k for k in keys if k.get("kid") == header.get("kid") and k.get("kty") == "RSA"), None)
    if key is None:
        raise StsRefusal(
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider, please reference "
            "AssumeRoleWithWebIdentity documentation for requirements",
            400,
        )
    public_key = RSAPublicNumbers(
        int.from_bytes(b64url_decode(key["e"]), "big"), int.from_bytes(b64url_decode(key["n"]), "big")
    ).public_key()
    try:
        public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise StsRefusal("InvalidIdentityToken", "The web identity token's signature is not valid", 400) from None


def _federated_trust_allows(
    document: dict[str, Any], provider_arn: str, action: str, context: dict[str, str | list[str]]
) -> bool:
    """A trust statement for this provider (`Federated`) allows `action` in this context and none denies
    it. Conditions are iam_policy's; one it cannot evaluate grants nothing and denies."""
    allowed = False
    for statement in iam_policy.statements(document):
        principal = statement.get("Principal")
        federated = _as_list(principal.get("Federated", [])) if isinstance(principal, dict) else []
        if principal != "*" and provider_arn not in federated:
            continue
        if not _action_matches(statement.get("Action", []), action):
            continue
        try:
            holds = iam_policy.conditions_hold(statement.get("Condition", {}), context)
        except ValueError:
            holds = statement.get("Effect") == "Deny"
        if not holds:
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed
