"""moto's server on 127.0.0.1 behind a front door that makes it behave more like AWS where it matters.

The front door (a WSGI middleware) records every request (service and action, for call counting),
answers injected faults (`runcreds_dev.faults`), lets the strict STS decide AssumeRole calls, and
hands successful PutEvents to the event router, which plays EventBridge → Lambda (moto's EventBridge
cannot target Lambda).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from runcreds_dev.faults import FaultInjector, Request
from runcreds_dev.strict_sts import LOCAL_SERVICE_HEADER, StrictSts
from runcreds_dev.sts_rules import StsRefusal

PutEventsHook = Callable[[bytes, bytes], None]
# Requests the embedded stack makes for itself (Lambda's event source mappings and destinations, see `internal`)
# carry this header and are not counted as calls of runcreds.
INTERNAL_HEADER = "x-runcreds-local-internal"
_EXPIRATION = re.compile(rb"<Expiration>[^<]*</Expiration>")
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/")


class CallLog:
    """Every AWS request the embedded AWS received, as (service, action)."""

    def __init__(self) -> None:
        self._calls: list[tuple[str, str]] = []
        self._signers: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def add(self, service: str, action: str, access_key_id: str = "") -> None:
        with self._lock:
            self._calls.append((service, action))
            self._signers.append((service, action, access_key_id))

    def signed_since(self, mark: int) -> list[tuple[str, str, str]]:
        """(service, action, access key ID that signed it) of every request since `mark`, like CloudTrail's
        userIdentity.accessKeyId: which session made which call."""
        with self._lock:
            return list(self._signers[mark:])

    def mark(self) -> int:
        with self._lock:
            return len(self._calls)

    def since(self, mark: int) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._calls[mark:])


class FrontDoor:
    def __init__(self, app: Any, sts: StrictSts, calls: CallLog, faults: FaultInjector) -> None:
        self.app = app
        self.sts = sts
        self.calls = calls
        self.faults = faults
        self.on_put_events: PutEventsHook | None = None
        # DynamoDB applies each request atomically; moto's server does not (a cancelled transaction restores
        # a copy of the table taken before it, erasing what other threads wrote meanwhile): one at a time.
        self._dynamodb = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        scope = _SCOPE.search(authorization)
        service = scope.group(3) if scope else ""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        params: dict[str, str] = {}
        if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        action = target.rsplit(".", 1)[-1] if target else params.get("Action", environ.get("REQUEST_METHOD", ""))
        signer = scope.group(1) if scope else None
        if service and not environ.get("HTTP_" + INTERNAL_HEADER.upper().replace("-", "_")):
            self.calls.add(service, action, signer or "")
            injected = self.faults.answer(Request(service, action, body, signer))
            if injected is not None:
                status_line, content_type, payload = injected
                start_response(status_line, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
                return [payload]

        if service == "sts" and action == "AssumeRole":
            try:
                self.sts.check(
                    params,
                    authorization,
                    environ.get("HTTP_" + LOCAL_SERVICE_HEADER.upper().replace("-", "_")),
                )
            except StsRefusal as refusal:
                start_response(f"{refusal.status} Refused", [("Content-Type", "text/xml")])
                return [refusal.as_xml()]
            if self.sts.session_seconds is not None:
                return [self._shortened(environ, start_response, self.sts.session_seconds)]

        if action == "AssumeRoleWithWebIdentity":  # unsigned: no credential scope names the service
            try:
                self.sts.check_web_identity(params, environ.get("HTTP_AMZ_SDK_INVOCATION_ID", ""))
            except StsRefusal as refusal:
                start_response(f"{refusal.status} Refused", [("Content-Type", "text/xml")])
                return [refusal.as_xml()]

        if service == "events" and action == "PutEvents" and self.on_put_events is not None:
            status: list[str] = []

            def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                status.append(code)
                return start_response(code, headers, exc_info)

            response = b"".join(self.app(environ, capture))
            if status and status[0].startswith("200"):
                self.on_put_events(body, response)
            return [response]
        if service == "dynamodb":
            with self._dynamodb:
                return [b"".join(self.app(environ, start_response))]
        return self.app(environ, start_response)  # type: ignore[no-any-return]

    def _shortened(self, environ: dict[str, Any], start_response: Callable[..., Any], seconds: int) -> bytes:
        """STS may grant less than the DurationSeconds asked for: the Expiration it returns is what counts."""
        status: list[tuple[str, list[tuple[str, str]]]] = []

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append((code, headers))
            return lambda _data: None

        body = b"".join(self.app(environ, capture))
        expiration = datetime.now(UTC) + timedelta(seconds=seconds)
        stamp = expiration.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        body = _EXPIRATION.sub(b"<Expiration>" + stamp + b"</Expiration>", body)
        code, headers = status[0]
        start_response(code, [(k, v) for k, v in headers if k.lower() != "content-length"]
                       + [("Content-Length", str(len(body)))])  # fmt: skip
        return body


class EmbeddedAws(ThreadedMotoServer):
    """ThreadedMotoServer with the front door in front of moto's application."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.strict_sts = StrictSts()
        self.calls = CallLog()
        self.faults = FaultInjector()
        self.front_door = FrontDoor(
            DomainDispatcherApplication(create_backend_app), self.strict_sts, self.calls, self.faults
        )

    def start(self) -> None:
        # Bound here, in the caller's thread: a port in use fails at once (werkzeug exits), where moto's
        # start() would bind in its own thread and wait forever for a server that never came up.
        self._server = make_server(self._ip_address, self._port, self.front_door, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def internal(client: Any) -> Any:
    """The client, marked as the embedded stack's own plumbing (what Lambda's event sources and
    destinations would do): its requests are not counted in `calls`."""

    def mark(request: Any, **_kwargs: Any) -> None:
        request.headers[INTERNAL_HEADER] = "1"

    client.meta.events.register("before-sign.*.*", mark)
    return client
