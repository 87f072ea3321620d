"""Logger, tracer and metrics in one neutral module."""

from __future__ import annotations

import logging
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

from runcreds.log_safety import quiet_wire_logs

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# Lambda's runtime logs through a root handler too (at the function's application log level).
# An invocation that had nothing to count (a duplicate, an API read) is not worth a warning.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
quiet_wire_logs(*logger.handlers, *logging.getLogger().handlers)
