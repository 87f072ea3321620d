"""Attach verification of broker-role integrations (docs/attach.md): the broker assumes the customer role as
a vend would, and a refusal is diagnosed."""

from runcreds.logic.verification.model import (
    CHAINING_CAP_SECONDS,
    DURATION_EXCEEDS_CHAINING_CAP,
    DURATION_EXCEEDS_MAX_SESSION,
    EXTERNAL_ID_MISMATCH,
    EXTERNAL_ID_NOT_ENFORCED,
    MISSING_SESSION_ACTIONS,
    MISSING_SET_SOURCE_IDENTITY,
    MISSING_TAG_SESSION,
    PROPAGATION_HINT,
    ROLE_MISSING_OR_UNTRUSTED,
    STS_REFUSED,
    STS_REGION_DISABLED,
    VERIFICATION_RUN,
    Diagnosis,
    Target,
    _ReadOnce,
    verify_with_retries,
)
from runcreds.logic.verification.service import Verifier

__all__ = [
    "CHAINING_CAP_SECONDS",
    "DURATION_EXCEEDS_CHAINING_CAP",
    "DURATION_EXCEEDS_MAX_SESSION",
    "EXTERNAL_ID_MISMATCH",
    "EXTERNAL_ID_NOT_ENFORCED",
    "MISSING_SESSION_ACTIONS",
    "MISSING_SET_SOURCE_IDENTITY",
    "MISSING_TAG_SESSION",
    "PROPAGATION_HINT",
    "ROLE_MISSING_OR_UNTRUSTED",
    "STS_REFUSED",
    "STS_REGION_DISABLED",
    "VERIFICATION_RUN",
    "Diagnosis",
    "Target",
    "Verifier",
    "_ReadOnce",
    "verify_with_retries",
]
