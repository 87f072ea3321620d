"""moto's server on 127.0.0.1 behind a front door that makes it behave more like AWS where it matters.

The front door (a WSGI middleware) records every request (service and action, for call counting),
lets the strict STS decide AssumeRole calls, and hands successful PutEvents to the event router, which
plays EventBridge → Lambda (moto's EventBridge cannot target Lambda).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from runcreds.local.strict_sts import LOCAL_SERVICE_HEADER, StrictSts, StsRefusal

PutEventsHook = Callable[[bytes, bytes], None]
# Requests the embedded stack makes for itself (Lambda's event source mappings and destinations, see `internal`)
# carry this header and are not counted as calls of runcreds.
INTERNAL_HEADER = "x-runcreds-local-internal"
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/")


class CallLog:
    """Every AWS request the embedded AWS received, as (service, action)."""

    def __init__(self) -> None:
        self._calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, service: str, action: str) -> None:
        with self._lock:
            self._calls.append((service, action))

    def mark(self) -> int:
        with self._lock:
            return len(self._calls)

    def since(self, mark: int) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._calls[mark:])


class FrontDoor:
    def __init__(self, app: Any, sts: StrictSts, calls: CallLog) -> None:
        self.app = app
        self.sts = sts
        self.calls = calls
        self.on_put_events: PutEventsHook | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        scope = _SCOPE.search(authorization)
        service = scope.group(2) if scope else ""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        params: dict[str, str] = {}
        if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        action = target.rsplit(".", 1)[-1] if target else params.get("Action", environ.get("REQUEST_METHOD", ""))
        if service and not environ.get("HTTP_" + INTERNAL_HEADER.upper().replace("-", "_")):
            self.calls.add(service, action)

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

        if service == "events" and action == "PutEvents" and self.on_put_events is not None:
            status: list[str] = []

            def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                status.append(code)
                return start_response(code, headers, exc_info)

            response = b"".join(self.app(environ, capture))
            if status and status[0].startswith("200"):
                self.on_put_events(body, response)
            return [response]
        return self.app(environ, start_response)  # type: ignore[no-any-return]


class EmbeddedAws(ThreadedMotoServer):
    """ThreadedMotoServer with the front door in front of moto's application."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.strict_sts = StrictSts()
        self.calls = CallLog()
        self.front_door = FrontDoor(DomainDispatcherApplication(create_backend_app), self.strict_sts, self.calls)

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
