"""`make up` as a new user meets it: `runcreds local up` prints export lines and Try lines that, pasted
into a shell in order, work on the fresh stack; Ctrl-C stops it quietly (a taken port: test_worker_failures)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
RUNCREDS = Path(sys.executable).with_name("runcreds")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def printed_until(up: subprocess.Popen[str], last: str, timeout: float = 180) -> list[str]:
    assert up.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(last):
            return lines
    raise AssertionError(f"`runcreds local up` did not print {last!r}: {lines}")


@pytest.fixture(scope="module")
def up() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [str(RUNCREDS), "local", "up", "--port", str(free_port()), "--api-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={key: value for key, value in os.environ.items() if not key.startswith("AWS_")},
    )  # fmt: skip
    try:
        yield process, printed_until(process, "Ctrl-C stops it.")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_printed_try_lines_work_on_a_fresh_stack(up: tuple[subprocess.Popen[str], list[str]]) -> None:
    _, printed = up
    exports = [line.strip() for line in printed if line.strip().startswith("export ")]
    start = printed.index(next(line for line in printed if line.startswith("Try, in that shell")))
    tries = [line.strip() for line in printed[start + 1 :] if line.startswith("  ")]
    assert len(tries) >= 5, printed
    script = "\n".join(["set -euo pipefail", *exports, *(f"echo '+ step {n}'\n{t}" for n, t in enumerate(tries))])
    ran = subprocess.run(  # noqa: S603
        ["/bin/bash", "-c", script], capture_output=True, text=True, timeout=240, check=False,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
    )  # fmt: skip
    assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}"
    assert ran.stdout.count("+ step") == len(tries)
    assert "assumed-role/acme-deployer/run-1" in ran.stdout  # exec'd get-caller-identity: the run's session


def test_ctrl_c_stops_it_without_a_traceback(up: tuple[subprocess.Popen[str], list[str]]) -> None:
    process, _ = up
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()
