"""One warm 'Lambda container' of the embedded stack: a process with the function's environment that
imports the handler module from the function's CodeUri, as Lambda does, and serves invocations.

Protocol: one JSON request per line on stdin, one JSON reply per line on the file descriptor given as
the first argument. The function's own output (its logs) goes to stdout/stderr, as on Lambda, and each
invocation's output ends with a line `END_MARKER` + its request ID (as Lambda's log has an END line), so
that the stack knows when every line the invocation wrote has been read.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
import traceback
import uuid
from typing import Any

END_MARKER = "\x1eEND RequestId: "  # the record separator: no log line of a function begins with it


class LocalContext:
    def __init__(self, function_name: str, timeout_ms: int, request_id: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._timeout_ms = timeout_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


def main() -> None:
    # Ctrl-C reaches the terminal's whole process group: the stack stops its containers itself, without
    # a KeyboardInterrupt traceback from each of them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # As Lambda's Python runtime does: a root handler on stdout at the application log level.
    logging.basicConfig(level=os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING"), stream=sys.stdout)
    reply_fd, code_uri, handler = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sys.path.insert(0, code_uri)  # what Lambda does with /var/task
    module_name, function_name = handler.rsplit(".", 1)
    entry = getattr(importlib.import_module(module_name), function_name)
    replies = os.fdopen(reply_fd, "w", buffering=1)
    replies.write(json.dumps({"ready": True}) + "\n")
    timeout_ms = int(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "30")) * 1000
    for line in sys.stdin:
        request = json.loads(line)
        context = LocalContext(
            os.environ["AWS_LAMBDA_FUNCTION_NAME"], timeout_ms, request.get("id") or str(uuid.uuid4())
        )
        reply: dict[str, Any]
        try:
            reply = {"result": entry(request["event"], context)}
        except Exception as error:
            traceback.print_exc()
            reply = {"error": {"errorType": type(error).__name__, "errorMessage": str(error)}}
        sys.stderr.flush()
        sys.stdout.write(f"{END_MARKER}{context.aws_request_id}\n")
        sys.stdout.flush()
        replies.write(json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
