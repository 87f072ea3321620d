"""Keeps secrets out of logs, for the functions and the command line alike (no Powertools import)."""

from __future__ import annotations

import logging
import re

# botocore logs whole request and response bodies at DEBUG: an AssumeRole response body holds the
# secret key and the session token, a KMS Decrypt response the plaintext. Those loggers stay at INFO
# whatever level the function runs at.
_WIRE_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.auth", "botocore.hooks", "urllib3")

# Defence in depth for anything else: an AWS secret access key is 40 characters of base64, a session
# token far longer. Such runs are replaced in every record the runcreds logger formats.
_SECRET_SHAPES = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])|[A-Za-z0-9/+=]{100,}")


def redact(text: str) -> str:
    return _SECRET_SHAPES.sub("***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def quiet_wire_logs(*handlers: logging.Handler) -> None:
    """Keep botocore's wire loggers at INFO and redact secret-shaped text in these handlers."""
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
