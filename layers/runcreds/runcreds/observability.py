"""Logger, tracer and metrics in one neutral module."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from aws_lambda_powertools import Logger, Metrics, Tracer

from runcreds.log_safety import quiet_wire_logs

_F = TypeVar("_F", bound=Callable[..., Any])


class _Untraced:
    """The tracer when tracing is off. Powertools' Tracer imports the X-Ray SDK (and builds its recorder)
    even when disabled, the largest part of a cold start; this stands in for it, doing what a disabled
    Tracer does: nothing."""

    @overload
    def capture_lambda_handler(
        self, lambda_handler: _F, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> _F: ...

    @overload
    def capture_lambda_handler(
        self, lambda_handler: None = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[_F], _F]: ...

    def capture_lambda_handler(
        self,
        lambda_handler: _F | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> _F | Callable[[_F], _F]:
        if lambda_handler is None:
            return lambda handler: handler
        return lambda_handler


logger = Logger()
# Powertools' own rule for "tracing is off": POWERTOOLS_TRACE_DISABLED, or not on Lambda (or under SAM local).
# Typed as Tracer: the handlers use only capture_lambda_handler, which the stand-in has.
tracer = cast(Tracer, _Untraced()) if Tracer._is_tracer_disabled() else Tracer()
metrics = Metrics()

# Lambda's runtime logs through a root handler too (at the function's application log level).
# An invocation that had nothing to count (a duplicate, an API read) is not worth a warning.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
quiet_wire_logs(*logger.handlers, *logging.getLogger().handlers)
