"""The embedded stack's Lambda service: warm worker processes per function, scaled by concurrency.

Each process runs with exactly the environment the template gives the function, plus credentials of
the function's execution role (obtained from the embedded STS as lambda.amazonaws.com would), so the
code path, the IAM identity and the logs are those of the deployed function.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runcreds_dev.lambda_worker import END_MARKER
from runcreds_dev.template import FunctionSpec

LogSink = Callable[[str, str], None]
# How long an invocation's reply waits for its last log lines to be read (they come through another pipe).
LOGS_DRAINED_SECONDS = 10


class FunctionError(Exception):
    """The handler raised: Lambda reports it as a function error (and retries async invocations)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


@dataclass
class _Worker:
    process: subprocess.Popen[str]
    replies: Any


class LocalFunction:
    def __init__(self, spec: FunctionSpec, environment: dict[str, str], log_sink: LogSink) -> None:
        self.spec = spec
        self.environment = environment
        self.log_sink = log_sink
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._logs_read: dict[str, threading.Event] = {}  # by request ID: its END line was read
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def _spawn(self) -> _Worker:
        read_fd, write_fd = os.pipe()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "runcreds_dev.lambda_worker",
                str(write_fd),
                str(self.spec.code_uri),
                self.spec.handler,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.environment,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        threading.Thread(target=self._pump_logs, args=(process,), daemon=True).start()
        worker = _Worker(process, os.fdopen(read_fd, "r"))
        ready = worker.replies.readline()
        if not ready:
            raise RuntimeError(f"{self.spec.logical_id} failed to start (see its log)")
        with self._lock:
            self._all.append(worker)
        return worker

    def _pump_logs(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            text = line.rstrip("\n")
            if text.startswith(END_MARKER):
                ended = self._logs_read.get(text.removeprefix(END_MARKER))
                if ended is not None:
                    ended.set()
                continue
            self.log_sink(self.spec.logical_id, text)

    def _take_worker(self) -> _Worker:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return self._spawn()
            if worker.process.poll() is None:
                return worker  # a warm container; one that exited is dropped, as Lambda would

    def invoke(self, event: dict[str, Any]) -> Any:
        """The function's answer to `event`, returned once every line the invocation logged is in the log
        sink (a test reads a metric or a warning right after the answer)."""
        worker = self._take_worker()
        request_id = str(uuid.uuid4())
        logs_read = self._logs_read[request_id] = threading.Event()
        try:
            assert worker.process.stdin is not None
            worker.process.stdin.write(json.dumps({"id": request_id, "event": event}) + "\n")
            worker.process.stdin.flush()
            line = worker.replies.readline()
            if line:
                logs_read.wait(LOGS_DRAINED_SECONDS)
        except (BrokenPipeError, OSError) as error:
            raise FunctionError("Runtime.ExitError", f"{self.spec.logical_id} died: {error}") from None
        finally:
            self._logs_read.pop(request_id, None)
        if not line:
            raise FunctionError("Runtime.ExitError", f"{self.spec.logical_id} exited")
        self._idle.put(worker)
        reply = json.loads(line)
        if "error" in reply:
            raise FunctionError(reply["error"]["errorType"], reply["error"]["errorMessage"])
        return reply["result"]

    def warm(self, count: int = 1) -> None:
        for _ in range(count):
            self._idle.put(self._spawn())

    def stop(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        while not self._idle.empty():
            self._idle.get_nowait()
        for worker in workers:
            if worker.process.stdin:
                worker.process.stdin.close()
            worker.process.terminate()
        for worker in workers:
            try:
                worker.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.process.kill()
