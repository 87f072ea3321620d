"""Domain errors. The API maps each to one HTTP status in one place (runcreds.routes.attach)."""

from __future__ import annotations

from typing import Any


class RuncredsError(Exception):
    """Base of every error runcreds raises on purpose. Messages never carry secrets."""


class NotFoundError(RuncredsError):
    pass


class InvalidRequestError(RuncredsError, ValueError):
    """A request that is well-formed but cannot be served as asked (a phase-scoped policy without a stack,
    a tampered pagination token, an inverted time range): 400; nothing was written."""


class ConflictError(RuncredsError):
    pass


class VerificationFailedError(RuncredsError):
    """The customer's role refused the broker: the 422 of the attach route."""

    def __init__(self, message: str, diagnosis: dict[str, Any]) -> None:
        super().__init__(message)
        self.diagnosis = diagnosis


class RateLimitedError(RuncredsError):
    """The account used up its budget of AssumeRole calls (attach verification): 429 with Retry-After."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientAwsError(RuncredsError):
    """AWS was throttling or failing: worth retrying, never the caller's fault (runcreds.faults decides)."""


class BrokerUnavailableError(TransientAwsError):
    """The broker's own hop (function role → BrokerRole) failed: an operator's problem (IAM propagation,
    a trust edit), never the customer role's verdict. Transient for the run; metric BrokerUnavailable."""


class InvalidRunEventError(RuncredsError, ValueError):
    """A run-phase event that does not follow docs/interface.md §1; nothing was called or written."""


class FinalRefusalError(RuncredsError):
    """An AWS answer that retrying will not change: the run phase fails with `code` (the service's own)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


class RoleRefusedError(FinalRefusalError):
    """STS refused an AssumeRole of the customer's role (AccessDenied, ValidationError,
    RegionDisabledException, ...). `code` and `message` are STS's own."""

    @property
    def sts_message(self) -> str:
        return self.reason


class KeyUnusableError(FinalRefusalError):
    """KMS refused runcreds' credentials key (AccessDeniedException, DisabledException, NotFoundException,
    KMSInvalidStateException): no retry fixes that, the run phase fails with KMS's code."""


class RefreshRefusedError(ConflictError):
    """The refresh route will not refresh this phase (finished, detached, not broker mode, ...): a 409 whose
    `code` says which (docs/interface.md §4: `phase_finished`)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
