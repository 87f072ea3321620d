"""Domain errors. The API maps each to one HTTP status in one place (runcreds.routes.shared.ANSWERS)."""

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


class ConditionFailedError(ConflictError):
    """A conditional DynamoDB write found the table otherwise: an answer, not a fault (runcreds.dal.items
    raises it for every store). `reasons` are a cancelled transaction's, one code per item ("None" for an
    item that was fine), empty for a single write; `item` is the item as stored, when the write asked for
    it (ReturnValuesOnConditionCheckFailure). A store turns it into its own answer; one that escapes is a 409."""

    CONDITION = "ConditionalCheckFailed"

    def __init__(self, operation: str, reasons: tuple[str, ...] = (), item: dict[str, Any] | None = None) -> None:
        super().__init__(f"the table changed meanwhile ({operation}): read it again and retry")
        self.reasons = reasons
        self.item = item

    @property
    def failed(self) -> list[int]:
        """The positions of the transaction's items whose condition failed."""
        return [i for i, code in enumerate(self.reasons) if code == self.CONDITION]


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


class SigningKeysUnavailableError(TransientAwsError):
    """KMS did not give the OIDC issuer a signing key's public half (whatever it answered): the JWKS is a
    503 for now, and STS asks again."""


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
