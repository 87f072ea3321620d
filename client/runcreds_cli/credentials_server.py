"""The credentials endpoint of `runcreds worker serve`/`exec` (docs/interface.md §6): the run's credentials on
127.0.0.1 in the AWS container-credentials format, renewed in the background before they expire for as
long as the phase lives. Broker-mode sessions are renewed through the refresh route (the broker
re-assumes: a chained session lasts at most an hour); worker-mode ones by assuming the role again here,
with the same identity (worker-mode OIDC ones by exchanging a fresh token from the refresh route here).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.run import RunPhase
from runcreds_cli.worker import CredentialsFetcher, PhaseFinishedError, RunCredentials, WorkerError, refresh_path

log = logging.getLogger("runcreds_cli.worker")

DEFAULT_REFRESH_BEFORE = 900.0  # 15 minutes, clamped to half the credentials' lifetime
FINISHED_CHECK_SECONDS = 30.0  # how often the record is looked at for a Finished between refreshes
MAX_BACKOFF_SECONDS = 30.0
CREDENTIALS_PATH = "/credentials"


class RecordingFetcher(CredentialsFetcher):
    """The worker's fetcher, remembering which record it read (integration, mode, generation)."""

    record: CredentialRecord | None = None

    def _await_record(self, run: RunPhase, integration_id: str | None, wait: float) -> CredentialRecord:
        record = super()._await_record(run, integration_id, wait)
        self.record = record
        return record


class RefreshRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


Refresher = Callable[[RunPhase, str], None]


def refresh_route_caller(api_url: str) -> Refresher:
    """POSTs to the refresh route, signed with the worker's own credentials (SigV4, execute-api)."""
    from runcreds_cli.sigv4_client import ApiClient

    client = ApiClient(api_url)

    def call(run: RunPhase, integration_id: str) -> None:
        answer = client.post(refresh_path(run), {"integration_id": integration_id})
        if answer.status != 200:
            code = answer.body.get("code", "") if isinstance(answer.body, dict) else ""
            raise RefreshRefused(answer.status, str(code), answer.message or f"HTTP {answer.status}")

    return call


@dataclass
class _State:
    credentials: RunCredentials | None
    obtained_at: float
    finished_reason: str | None = None


class CredentialsServer:
    """Holds the phase's current credentials, renews them in the background and serves them."""

    def __init__(
        self,
        run: RunPhase,
        fetcher: RecordingFetcher,
        first: RunCredentials,
        refresher: Refresher | None,
        refresh_before: float | None = None,
        port: int = 0,
    ) -> None:
        assert fetcher.record is not None
        self.run = run
        self.fetcher = fetcher
        self.integration_id = fetcher.record.integration_id
        self.worker_mode = fetcher.record.status is RecordStatus.WORKER
        self.refresher = refresher
        self.explicit_refresh_before = refresh_before
        self.token = secrets.token_urlsafe(32)
        self.state = _State(first, time.time())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self.httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ what clients see
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{CREDENTIALS_PATH}"

    def client_env(self) -> dict[str, str]:
        return {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.token,
            "TF_VAR_runcreds_run_id": self.run.run_id,
        }

    def current(self) -> tuple[RunCredentials | None, str]:
        """The credentials to serve, or None and why not."""
        with self._lock:
            state = self.state
        if state.finished_reason:
            return None, state.finished_reason
        creds = state.credentials
        if creds is None or creds.expiration <= datetime.now(UTC):
            return None, "the run's credentials have expired and could not be refreshed"
        return creds, ""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), server.token.encode()):
                    self._answer(403, {"message": "wrong or missing Authorization token"})
                    return
                if self.path.split("?", 1)[0] != CREDENTIALS_PATH:
                    self._answer(404, {"message": f"credentials are served at {CREDENTIALS_PATH}"})
                    return
                creds, why = server.current()
                if creds is None:
                    self._answer(503, {"message": why})
                    return
                self._answer(
                    200,
                    {
                        "AccessKeyId": creds.access_key_id,
                        "SecretAccessKey": creds.secret_access_key,
                        "Token": creds.session_token,
                        "Expiration": creds.expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                )

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per SDK request is noise, and the line would name the path only

        return Handler

    # ------------------------------------------------------------------ refreshing
    def refresh_before(self, creds: RunCredentials, obtained_at: float) -> float:
        """An explicit --refresh-before as given; else 15 minutes, at most half the lifetime."""
        if self.explicit_refresh_before is not None:
            return self.explicit_refresh_before
        lifetime = creds.expiration.timestamp() - obtained_at
        return min(DEFAULT_REFRESH_BEFORE, max(lifetime, 0) / 2)

    def start(self) -> CredentialsServer:
        for target in (self.httpd.serve_forever, self._refresh_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _finish(self, reason: str) -> None:
        with self._lock:
            self.state = _State(None, time.time(), reason)
        log.warning("serving no credentials any more: %s", reason)

    def _refresh_loop(self) -> None:
        backoff = 1.0
        last_finished_check = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                state = self.state
            if state.finished_reason or state.credentials is None:
                return
            creds = state.credentials
            left = creds.expiration.timestamp() - time.time()
            due_in = left - self.refresh_before(creds, state.obtained_at)
            if due_in > 0:
                if time.monotonic() - last_finished_check >= FINISHED_CHECK_SECONDS:
                    last_finished_check = time.monotonic()
                    self._check_finished()
                self._stop.wait(min(due_in, FINISHED_CHECK_SECONDS))
                continue
            try:
                fresh = self._renew()
            except PhaseFinishedError as finished:
                self._finish(str(finished))
                return
            except RefreshRefused as refused:
                if refused.code == "phase_finished":
                    self._finish(str(refused))
                    return
                self._warn(refused, left)
            except (WorkerError, Exception) as error:  # a failed refresh is retried while the credentials last
                self._warn(error, left)
            else:
                if fresh.expiration > creds.expiration:
                    with self._lock:
                        self.state = _State(fresh, time.time())
                    log.info("credentials refreshed, now valid until %s", fresh.expiration.isoformat())
                    backoff = 1.0
                    continue
                # The broker answered with the session we have (another worker's refresh, a moment ago).
            self._stop.wait(min(backoff, max(left / 4, 0.5)))
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _renew(self) -> RunCredentials:
        if not self.worker_mode:
            if self.refresher is None:
                raise RefreshRefused(0, "no_api", "RUNCREDS_API_URL is not set: cannot reach the refresh route")
            self.refresher(self.run, self.integration_id)
        # Worker mode: assumes the role again (same external ID, session name, source identity, tags);
        # broker mode: reads and decrypts the refreshed record. A finished phase raises PhaseFinishedError.
        return self.fetcher.fetch(self.run, self.integration_id)

    def _check_finished(self) -> None:
        try:
            finished = self.fetcher.store.read_phase(self.run).finished
        except Exception as error:  # the check is best effort: the refresh will say it too
            log.debug("could not read the record: %s", type(error).__name__)
            return
        if finished:
            self._finish(f"the {self.run.phase} phase of run {self.run.run_id} has finished")

    def _warn(self, error: Exception, left: float) -> None:
        log.warning(
            "refreshing the credentials failed (%s); serving the current ones, %.0f s left", _one_line(error), left
        )


def _one_line(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:300]
