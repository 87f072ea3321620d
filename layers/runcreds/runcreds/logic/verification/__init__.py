"""Attach verification (docs/attach.md, docs/oidc.md): runcreds tries the customer role as a vend would,
and a refusal is diagnosed. probes (the STS calls, behind injectable protocols, and the lazy evidence),
rules (ordered tables: cause → code), messages (the prose of each code), service and oidc_service (the
verifiers, which answer DiagnosisBody)."""

from runcreds.logic.verification.model import CHAINING_CAP_SECONDS, DiagnosisCode, Target
from runcreds.logic.verification.oidc_service import OidcVerifier
from runcreds.logic.verification.service import Verifier

__all__ = ["CHAINING_CAP_SECONDS", "DiagnosisCode", "OidcVerifier", "Target", "Verifier"]
