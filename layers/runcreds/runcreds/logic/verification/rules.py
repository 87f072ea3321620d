"""Which diagnosis a refusal gets: ordered tables of rules, cause → code, as data.

A rule holds when each of its facts (methods of probes.Evidence) does; the first rule that holds gives the
code. Facts are read left to right and stop at the first false one, and Evidence asks STS only for the
facts read, so the order of the table is also the order (and the number) of the probes: the vend's own
request is diagnosed first (session actions), then other bindings of this integration, then the role
itself. Every table ends with a rule that always holds, except the binding ones (None: the role binds).
Rules on different STS codes (AccessDenied, ValidationError, ...) never both hold: their order among
themselves is free; within one code it is the diagnosis (tests/unit/test_*verification_rules.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from runcreds.logic.verification.model import CHAINING_CAP_SECONDS, DiagnosisCode
from runcreds.logic.verification.probes import Evidence

Code = DiagnosisCode
E = Evidence
Fact = Callable[[Evidence], bool]

_AN_HOUR: Mapping[str, Any] = MappingProxyType({"duration_seconds": CHAINING_CAP_SECONDS})
_BROKERS_OWN_REGION: Mapping[str, Any] = MappingProxyType({"region": None})
_TAGS, _SOURCE_IDENTITY = "sts:TagSession", "sts:SetSourceIdentity"


@dataclass(frozen=True)
class Rule:
    code: DiagnosisCode
    when: tuple[Fact, ...]
    missing_actions: tuple[str, ...] | None = None
    patch: Mapping[str, Any] | None = None  # suggested_integration_patch

    def holds(self, evidence: Evidence) -> bool:
        return all(fact(evidence) for fact in self.when)


# Refused as sent, let in without session tags and source identity: which of the two the trust lacks.
_BARE: tuple[Fact, ...] = (E.access_denied, E.granted_without_session_actions)
_SESSION_ACTIONS = (
    Rule(
        Code.MISSING_SESSION_ACTIONS,
        (*_BARE, E.refused_with_tags_alone, E.refused_with_source_identity_alone),
        (_TAGS, _SOURCE_IDENTITY),
    ),
    Rule(Code.MISSING_TAG_SESSION, (*_BARE, E.refused_with_tags_alone), (_TAGS,)),
    Rule(Code.MISSING_SET_SOURCE_IDENTITY, (*_BARE, E.refused_with_source_identity_alone), (_SOURCE_IDENTITY,)),
    Rule(Code.MISSING_SESSION_ACTIONS, _BARE, (_SOURCE_IDENTITY, _TAGS)),  # each alone passes, both not: name both
)

# A chained session (the broker's) over an hour that an hour would fit: whichever limit STS names.
_AN_HOUR_FITS: tuple[Fact, ...] = (E.validation_error, E.over_chaining_cap, E.granted_for_an_hour)

ROLE_TRUST: tuple[Rule, ...] = (
    *_SESSION_ACTIONS,
    Rule(Code.EXTERNAL_ID_MISMATCH, (E.access_denied, E.granted_to_another_binding)),
    Rule(Code.ROLE_MISSING_OR_UNTRUSTED, (E.access_denied,)),
    Rule(Code.STS_REGION_DISABLED, (E.region_disabled,), patch=_BROKERS_OWN_REGION),
    Rule(Code.DURATION_EXCEEDS_MAX_SESSION, (*_AN_HOUR_FITS, E.names_max_session_duration), patch=_AN_HOUR),
    Rule(Code.DURATION_EXCEEDS_CHAINING_CAP, _AN_HOUR_FITS, patch=_AN_HOUR),
    Rule(Code.STS_REFUSED, ()),
)

# After the role let the broker in: it must not let another tenant in, nor a request without external ID.
ROLE_BINDING: tuple[Rule, ...] = (
    Rule(Code.EXTERNAL_ID_NOT_ENFORCED, (E.granted_to_another_tenant,)),
    Rule(Code.EXTERNAL_ID_NOT_ENFORCED, (E.granted_without_external_id,)),
)

OIDC_TRUST: tuple[Rule, ...] = (
    Rule(Code.OIDC_PROVIDER_MISSING, (E.no_oidc_provider,)),
    Rule(Code.OIDC_AUDIENCE_NOT_ALLOWED, (E.audience_refused,)),
    Rule(Code.DURATION_EXCEEDS_MAX_SESSION, (E.names_max_session_duration, E.granted_for_an_hour), patch=_AN_HOUR),
    Rule(Code.DURATION_EXCEEDS_MAX_SESSION, (E.names_max_session_duration,)),
    *_SESSION_ACTIONS,
    Rule(Code.SUB_MISMATCH, (E.access_denied, E.granted_to_another_binding)),
    Rule(Code.ROLE_MISSING_OR_UNTRUSTED, (E.access_denied,)),
    Rule(Code.STS_REFUSED, ()),
)

# After the token was exchanged: a token of another tenant must be refused.
OIDC_BINDING: tuple[Rule, ...] = (Rule(Code.SUB_NOT_ENFORCED, (E.granted_to_another_tenant,)),)

# Refusals IAM propagation may explain (a role or provider created moments ago): retried until a deadline.
PROPAGATION_POSSIBLE = frozenset({Code.ROLE_MISSING_OR_UNTRUSTED, Code.OIDC_PROVIDER_MISSING})


def first_that_holds(rules: tuple[Rule, ...], evidence: Evidence) -> Rule | None:
    return next((rule for rule in rules if rule.holds(evidence)), None)
