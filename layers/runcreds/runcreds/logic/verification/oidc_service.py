"""Verification of OIDC integrations (docs/oidc.md): a real exchange per enabled access, with a token as a
vend would mint it (`phase:plan` for read, `phase:apply` for write), then the binding check (a token of
another tenant must be refused: `sub_not_enforced`). A refusal is diagnosed as rules.OIDC_TRUST says: by
what STS said, and by probes (the same token without tags and source identity, the `sub` of the other
access and of other stacks this integration is attached to). Same interface as service.Verifier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runcreds.exceptions import RoleRefusedError
from runcreds.logic import oidc
from runcreds.logic.trust_policy import oidc_trust_policy_for
from runcreds.logic.verification import messages, rules
from runcreds.logic.verification.model import Target
from runcreds.logic.verification.probes import AS_VERIFIED, TokenExchange, Variant, WebIdentitySts
from runcreds.logic.verification.service import Verification
from runcreds.models.run import Access
from runcreds.run_scope import RunScope


@dataclass
class OidcVerifier(Verification):
    signing_key_arn: str | None
    oidc_issuer: str
    before_call: Callable[[], None] | None = None
    # The STS the exchanges go through (tests inject a double); runcreds' own tokens by default.
    sts: WebIdentitySts | None = None

    trust_rules = rules.OIDC_TRUST
    binding_rules = rules.OIDC_BINDING
    prose = messages.OIDC_MESSAGES

    def __post_init__(self) -> None:
        if self.sts is None and self.signing_key_arn:
            self.sts = TokenExchange(self.signing_key_arn, self.oidc_issuer)

    @property
    def issuer(self) -> str:
        return self.oidc_issuer

    def warm(self, region: str | None) -> None:
        if self.sts is not None:
            self.sts.warm(region)

    def attempt(self, target: Target, access: Access, variant: Variant = AS_VERIFIED) -> RoleRefusedError | None:
        if self.sts is None:  # no call made, so none is charged
            return RoleRefusedError("OidcNotConfigured", "this runcreds deployment has no OIDC signing key")
        return super().attempt(target, access, variant)

    def _scope(self, target: Target, access: Access, variant: Variant) -> RunScope:
        return target.scope(variant.access or access, variant.stack, variant.account)

    def _request(self, target: Target, access: Access, variant: Variant) -> RoleRefusedError | None:
        assert self.sts is not None
        scope = self._scope(target, access, variant)
        spec = scope.assume_role_spec(
            target.role_arn, variant.duration_seconds or target.duration_seconds, target.region
        )
        return self.sts.exchange(scope, spec, tags=variant.tags, source_identity=variant.source_identity)

    def _name(self, target: Target, access: Access, variant: Variant) -> str:
        return oidc.subject_for(self._scope(target, access, variant).run)

    def _identity(self, target: Target, access: Access) -> dict[str, Any]:
        return {
            "external_id": None,
            "sub": self._name(target, access, AS_VERIFIED),
            "principal": oidc.provider_arn_for(self.issuer, target.role_arn),
            "suggested_trust_policy": oidc_trust_policy_for(self.issuer, target.role_arn, target.account, target.stack),
        }
