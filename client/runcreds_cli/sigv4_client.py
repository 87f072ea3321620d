"""A SigV4-signing client for the runcreds HTTP API (IAM auth), for scripts, the demo and the tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import botocore.session
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

if TYPE_CHECKING:
    import boto3


def _region(session: boto3.Session | botocore.session.Session) -> str | None:
    if isinstance(session, botocore.session.Session):
        return session.get_config_variable("region")  # type: ignore[no-any-return]
    return session.region_name


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""


class ApiClient:
    def __init__(
        self, base_url: str, session: boto3.Session | botocore.session.Session | None = None, region: str | None = None
    ) -> None:
        """`session`: whose credentials sign (a boto3 or a botocore session; default: botocore's, from the
        environment and the shared files: the command line does not import boto3)."""
        self.base_url = base_url.rstrip("/")
        self.session = session or botocore.session.Session()
        self.region = region or _region(self.session) or "us-east-1"
        # A 429 or 503 is the caller's to see (its Retry-After may be a minute), not to sleep through here.
        self._http = urllib3.PoolManager(retries=urllib3.Retry(total=3, respect_retry_after_header=False))

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> ApiResponse:
        url = self.base_url + path
        if query:
            url += "?" + urlencode(query)
        data = json.dumps(body) if body is not None else None
        request = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
        credentials = self.session.get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials to sign the request with")
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(request)
        response = self._http.request(method, url, body=data, headers=dict(request.headers.items()))
        text = response.data.decode() if response.data else ""
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return ApiResponse(response.status, parsed, dict(response.headers.items()))

    def get(self, path: str, **query: str) -> ApiResponse:
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Any) -> ApiResponse:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> ApiResponse:
        return self.request("PATCH", path, body)

    def put(self, path: str, body: Any) -> ApiResponse:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> ApiResponse:
        return self.request("DELETE", path)
