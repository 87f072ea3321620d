"""Per-account budget of the AssumeRoles that attach verification makes: a token bucket in DynamoDB.

One item per account holds the bucket as GCRA does: `tat`, the time at which the bucket would be full
again (epoch seconds). Taking n tokens moves it n/rate seconds on, from now if it lies in the past; the
take is refused when that would put it more than burst/rate seconds ahead of now. One conditional
UpdateItem when the account has been idle, two when it has not, none of them a read.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal

from runcreds.dal.items import TableStore, to_item
from runcreds.exceptions import ConditionFailedError, RateLimitedError, TransientAwsError

_IDLE_FOR_DAYS = 1  # an account's item expires (TTL) a day after its bucket is full again
_CONTENDED_ATTEMPTS = 3


def _number(seconds: float) -> Decimal:
    return Decimal(f"{seconds:.3f}")


class AssumeRoleBudgetStore(TableStore):
    def __init__(self, table_name: str, burst: int, per_minute: float, **kwargs: object) -> None:
        super().__init__(table_name, **kwargs)  # type: ignore[arg-type]
        self.burst = burst
        self.interval = 60.0 / per_minute  # seconds a token takes to come back

    def take(self, account: str, tokens: int) -> None:
        """Take `tokens` from the account's bucket, or raise RateLimitedError (nothing taken) saying when
        they will be there."""
        tokens = min(tokens, self.burst)
        now = time.time()
        # The bucket is full (tat in the past): start from now.
        current = self._move(account, now + tokens * self.interval, "attribute_not_exists(tat) OR tat <= :now", now)
        for _ in range(_CONTENDED_ATTEMPTS):
            if current is None:
                return
            after = current + tokens * self.interval
            ahead = after - now - self.burst * self.interval
            if ahead > 0:
                raise RateLimitedError(
                    f"account {account} made too many AssumeRole calls verifying roles (at most {self.burst} at once, "
                    f"then {60 / self.interval:g} a minute): retry in {math.ceil(ahead)} s",
                    retry_after=math.ceil(ahead),
                )
            current = self._move(account, after, "tat = :was", now, was=current)
        raise TransientAwsError("the AssumeRole budget is contended; retry in a few seconds")

    def _move(self, account: str, tat: float, condition: str, now: float, was: float | None = None) -> float | None:
        """Set the bucket's tat if `condition` holds: None when written, the stored tat when not."""
        values = {":tat": _number(tat), ":expires": int(tat) + _IDLE_FOR_DAYS * 86400, ":now": _number(now)}
        if was is not None:
            values[":was"] = _number(was)
            del values[":now"]
        try:
            self.update_item(
                TableName=self.table_name,
                Key=to_item({"account": account}),
                UpdateExpression="SET tat = :tat, expires_at = :expires",
                ConditionExpression=condition,
                ExpressionAttributeValues=to_item(values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailedError as failure:
            stored = failure.item or {}
            if "tat" not in stored:
                raise TransientAwsError("the AssumeRole budget could not be read; retry in a few seconds") from None
            return float(stored["tat"])
        return None
