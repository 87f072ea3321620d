"""The embedded Lambda service (runcreds_dev.lambda_runtime): an invocation returns once every line it logged
has been read, so a test reads a function's metric or warning right after its answer."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from runcreds_dev.lambda_runtime import LocalFunction
from runcreds_dev.template import FunctionSpec

HANDLER = """
import sys, time

def handle(event, context):
    for i in range(event["lines"]):
        print(f"line {i} of {context.aws_request_id}")
    sys.stderr.write("the last, on stderr\\n")
    return {"lines": event["lines"]}
"""


def test_every_line_an_invocation_logs_is_read_when_it_returns(tmp_path: Path) -> None:
    (tmp_path / "noisy.py").write_text(HANDLER)
    spec = FunctionSpec("NoisyFunction", tmp_path, "noisy.handle", None, {}, 30)
    lines: list[str] = []

    def slow_sink(_function: str, line: str) -> None:  # a log reader that lags behind (a loaded machine)
        time.sleep(0.001)
        lines.append(line)

    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "AWS_LAMBDA_FUNCTION_NAME": "noisy",
    }
    function = LocalFunction(spec, environment, slow_sink)
    try:
        for _ in range(3):
            before = len(lines)
            assert function.invoke({"lines": 200}) == {"lines": 200}
            logged = lines[before:]
            assert len(logged) == 201 and "the last, on stderr" in logged and logged[-1].startswith("line")
    finally:
        function.stop()
    assert not any("END RequestId" in line for line in lines)  # the marker is the stack's, not a log line
