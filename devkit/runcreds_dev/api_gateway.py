"""API Gateway (REST, proxy integration, IAM auth) for the embedded stack, from the template's Api events."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from runcreds_dev.iam_auth import API_ID, MISSING_TOKEN, Caller, Refusal, authenticate, authorize, invoke_arn
from runcreds_dev.lambda_runtime import FunctionError, LocalFunction
from runcreds_dev.template import ACCOUNT_ID, ApiRoute

STAGE = "v1"


TOO_MANY_REQUESTS = "Too Many Requests"


class TokenBucket:
    """API Gateway's throttle: `burst` requests at once, refilled at `rate` a second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class LocalApiGateway:
    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.routes: list[tuple[ApiRoute, re.Pattern[str], LocalFunction]] = []
        self.throttle: TokenBucket | None = None  # the stage's, from the template (EmbeddedStack.start)
        self._server: BaseWSGIServer | None = None

    def add(self, route: ApiRoute, function: LocalFunction) -> None:
        # As API Gateway REST: a path parameter is one segment, and a trailing slash is the same resource.
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.path))
        self.routes.append((route, re.compile(f"{regex}/*"), function))

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}/{STAGE}"

    def start(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self._app, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        def deny(status: int, message: str) -> Response:
            return Response(json.dumps({"message": message}), status, content_type="application/json")

        path = request.path
        if not path.startswith(f"/{STAGE}/"):
            return deny(403, MISSING_TOKEN)
        path = path[len(STAGE) + 1 :]
        found = next(
            ((r, m, f) for r, regex, f in self.routes if (m := regex.fullmatch(path)) and r.method == request.method),
            None,
        )
        caller: Caller | None = None
        if found is None or not found[0].public:
            # As API Gateway with IAM auth: the caller is authenticated and authorized on the request's ARN
            # before the route is served, so an unknown path answers 403 to whoever may not invoke it. Only
            # a route declared `Authorizer: NONE` (that method on that path) is served to anyone.
            raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
            try:
                caller = authenticate(request.method, request.host, raw_uri, dict(request.headers), request.get_data())
                authorize(caller, invoke_arn(STAGE, request.method, path))
            except Refusal as refusal:
                return deny(403, refusal.message)
        if found is None:
            return deny(403, MISSING_TOKEN)
        if self.throttle is not None and not self.throttle.take():
            return deny(429, TOO_MANY_REQUESTS)  # as API Gateway: before the function runs
        route, match, function = found
        body = request.get_data(as_text=True)
        event = {
            "resource": route.path,
            "path": path,
            "httpMethod": request.method,
            "headers": dict(request.headers),
            "multiValueHeaders": {k: request.headers.getlist(k) for k in request.headers.keys()},  # noqa: SIM118
            "queryStringParameters": dict(request.args) or None,
            "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in request.args} or None,
            "pathParameters": match.groupdict() or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local",
                "resourcePath": route.path,
                "httpMethod": request.method,
                "path": f"/{STAGE}{path}",
                "stage": STAGE,
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(time.time() * 1000),
                "accountId": ACCOUNT_ID,
                "apiId": API_ID,
                "protocol": "HTTP/1.1",
                "domainName": request.host,
                "identity": {
                    "accessKey": caller.access_key if caller else None,
                    "userArn": caller.arn if caller else None,
                    "sourceIp": request.remote_addr,
                    "userAgent": request.user_agent.string,
                },
            },
            "body": body or None,
            "isBase64Encoded": False,
        }
        try:
            result = function.invoke(event)
        except FunctionError:
            return deny(502, "Internal server error")
        headers = result.get("headers") or {}
        response = Response(result.get("body") or "", result.get("statusCode", 200))
        for key, value in headers.items():
            response.headers[key] = value
        for key, values in (result.get("multiValueHeaders") or {}).items():
            response.headers.setlist(key, values)  # replaces werkzeug's default text/plain Content-Type
        return response
