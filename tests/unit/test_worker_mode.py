"""The worker's worker-mode and decryption paths (runcreds_cli.worker) without AWS: the record's role
assumed on the worker, the OIDC token exchange with the refresh route, the route's refusals and KMS's
answers, each one exit status (docs/interface.md §6). STS and KMS are botocore Stubbers, the route a
stand-in ApiClient."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import boto3
import pytest
import urllib3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.stub import Stubber

from runcreds import aws
from runcreds.models.entities import RecordStatus
from runcreds.run_scope import RunScope
from runcreds_cli import sigv4_client, worker
from runcreds_cli.sigv4_client import ApiResponse
from runcreds_cli.worker import RunCredentials, WorkerError, refresh_path
from tests.worker_support import FIRST, RUN, Partition, fetcher, record, refusal


def test_a_worker_mode_record_without_a_role_is_status_10() -> None:
    failure = refusal(records=[record(status=RecordStatus.WORKER, ciphertext=None)])
    assert failure.exit_status == 10
    assert str(failure) == (
        f"the worker-mode record of integration {FIRST} for run {RUN.run_id} (plan) has no role to assume; "
        "runcreds did not write it so: tell the runcreds operator"
    )


def test_a_worker_mode_oidc_record_without_the_api_url_is_status_8() -> None:
    spec = {"role_arn": "arn:aws:iam::123456789012:role/x", "session_name": RUN.run_id, "external_id": "e",
            "duration_seconds": 900, "source_identity": "s", "tags": [], "transitive_tag_keys": [],
            "region": "eu-west-1"}  # fmt: skip
    oidc = record(status=RecordStatus.WORKER, ciphertext=None, trust="oidc", assume_role=spec)
    failure = refusal(records=[oidc])
    assert failure.exit_status == 8
    assert str(failure) == (
        f"integration {FIRST} is a worker-mode OIDC integration: the worker gets its token from the runcreds API; "
        "set RUNCREDS_API_URL to the stack's ApiUrl"
    )


# ------------------------------------------------------------------ the refresh route's refusals of a token
@pytest.mark.parametrize(
    ("status", "body", "exit_status", "says"),
    [
        (409, {"code": "phase_finished"}, 7, "has finished"),
        (409, {"code": "conflict"}, 4, "refused a token (409 conflict): told so"),
        (404, {}, 3, "no vend of this phase: told so"),
        (403, {}, 6, "refused this worker the plan token of account acme (403)"),
        (429, {}, 9, "(429: told so): retry later"),
        (500, {}, 9, "(500: told so)"),
        (503, "not a dict", 9, "(503: told so)"),
        (499, {}, 4, "refused a token (499): told so"),
        (400, "not a dict", 4, "refused a token (400): told so"),
    ],
)
def test_a_token_refused_is_one_status(status: int, body: object, exit_status: int, says: str) -> None:
    failure = worker._token_refused(RUN, status, body, "told so")
    assert failure.exit_status == exit_status
    assert says in str(failure)


def test_a_token_refused_without_a_message_names_its_http_status() -> None:
    assert "no vend of this phase: HTTP 404" in str(worker._token_refused(RUN, 404, {}, ""))


# ------------------------------------------------------------------ worker mode with OIDC: the token exchange
API_URL = "https://api.example/v1"
ROLE = "arn:aws:iam::123456789012:role/deploy"
GRANTED = {"token": "the-token", "role_arn": ROLE, "duration_seconds": 900, "region": "eu-west-1"}


class Api:
    """The refresh route's answer (or the exception of a request that never got one), as ApiClient gives it."""

    def __init__(self, status: int = 200, body: object = None, error: BaseException | None = None) -> None:
        self.answer = ApiResponse(status, {"web_identity_tokens": [GRANTED]} if body is None else body)
        self.error = error
        self.posts: list[tuple[str, object]] = []

    def __call__(self, base_url: str) -> Api:
        assert base_url == API_URL
        return self

    def post(self, path: str, body: object) -> ApiResponse:
        self.posts.append((path, body))
        if self.error is not None:
            raise self.error
        return self.answer


def exchanged(monkeypatch: pytest.MonkeyPatch, api: Api, sts: Callable[[Stubber], None] | None = None) -> object:
    """The fetch of an OIDC worker-mode record: its credentials, or the WorkerError it raised."""
    monkeypatch.setattr(sigv4_client, "ApiClient", api)
    client = boto3.client("sts", region_name="eu-west-1", config=Config(signature_version=UNSIGNED))
    stubber = Stubber(client)
    if sts is not None:
        sts(stubber)
    stubber.activate()
    monkeypatch.setattr(aws, "web_identity_sts", lambda region: client if region == "eu-west-1" else None)
    spec = RunScope(RUN, FIRST).assume_role_spec(ROLE, 900, "eu-west-1").model_dump()
    oidc = record(status=RecordStatus.WORKER, ciphertext=None, trust="oidc", assume_role=spec)
    try:
        return fetcher(Partition(oidc), api_url=API_URL).fetch(RUN)
    except WorkerError as failure:
        return failure


def test_an_oidc_worker_exchanges_the_routes_token_for_the_runs_session(monkeypatch: pytest.MonkeyPatch) -> None:
    expiration = datetime(2030, 1, 1, tzinfo=UTC)
    answer = {"Credentials": {"AccessKeyId": "ASIA" + "X" * 12, "SecretAccessKey": "s" * 16, "SessionToken": "t" * 16,
                              "Expiration": expiration}}  # fmt: skip
    request = {"RoleArn": ROLE, "RoleSessionName": RunScope(RUN, FIRST).session_name, "WebIdentityToken": "the-token",
               "DurationSeconds": 900}  # fmt: skip
    api = Api()
    credentials = exchanged(
        monkeypatch, api, lambda s: s.add_response("assume_role_with_web_identity", answer, request)
    )
    assert credentials == RunCredentials("ASIA" + "X" * 12, "s" * 16, "t" * 16, expiration)
    assert api.posts == [(refresh_path(RUN), {"integration_id": FIRST, "web_identity_token": True})]
    assert refresh_path(RUN) == f"/accounts/acme/stacks/network/runs/{RUN.run_id}/phases/plan/refresh"


def test_sts_refusing_the_token_is_status_4_and_never_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(stubber: Stubber) -> None:
        stubber.add_client_error("assume_role_with_web_identity", "AccessDenied", "not trusted", 403)

    failure = exchanged(monkeypatch, Api(), refuse)
    assert isinstance(failure, WorkerError) and failure.exit_status == 4
    assert str(failure) == f"STS refused runcreds' token for {ROLE}: AccessDenied: not trusted"


@pytest.mark.parametrize(
    ("api", "exit_status", "says"),
    [
        (Api(error=urllib3.exceptions.MaxRetryError(None, "/", None)), 9,  # type: ignore[arg-type]
         "could not reach the runcreds API: MaxRetryError: retry later"),
        (Api(error=ConnectionRefusedError()), 9, "could not reach the runcreds API: ConnectionRefusedError"),
        (Api(error=RuntimeError("no credentials to sign with")), 8, "the runcreds API: no credentials to sign with"),
        (Api(409, {"code": "phase_finished", "message": "over"}), 7, "has finished"),
        (Api(404, {"message": "no vend yet"}), 3, "no vend of this phase: no vend yet"),
        (Api(200, {"web_identity_tokens": []}), 10,
         "the runcreds API answered no token the worker can use: is RUNCREDS_API_URL this stack's ApiUrl?"),
        (Api(200, {"web_identity_tokens": [GRANTED, GRANTED]}), 10, "answered no token"),
        (Api(200, {"web_identity_tokens": [{**GRANTED, "duration_seconds": "soon"}]}), 10, "answered no token"),
        (Api(200, {"web_identity_tokens": [{"token": "t"}]}), 10, "answered no token"),
        (Api(200, "not json"), 10, "answered no token"),
    ],
)  # fmt: skip
def test_the_routes_failures_are_one_status(
    monkeypatch: pytest.MonkeyPatch, api: Api, exit_status: int, says: str
) -> None:
    failure = exchanged(monkeypatch, api)
    assert isinstance(failure, WorkerError) and failure.exit_status == exit_status
    assert says in str(failure)
    if exit_status == 10:
        assert str(failure) == (
            "the runcreds API answered no token the worker can use: is RUNCREDS_API_URL this stack's ApiUrl?"
        )
    assert "the-token" not in str(failure)


def test_a_worker_mode_role_refusing_this_worker_is_status_4_with_stss_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("sts", region_name="eu-west-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_client_error("assume_role", "AccessDenied", "not trusted", 403)
    stubber.activate()
    monkeypatch.setattr(aws, "sts", lambda region: client if region == "eu-west-1" else None)
    spec = RunScope(RUN, FIRST).assume_role_spec(ROLE, 900, "eu-west-1")
    worker_mode = record(status=RecordStatus.WORKER, ciphertext=None, assume_role=spec.model_dump())
    failure = refusal(records=[worker_mode])
    assert failure.exit_status == 4
    assert (
        str(failure)
        == f"this worker could not assume {ROLE} with external ID {spec.external_id}: AccessDenied: not trusted"
    )


@pytest.mark.parametrize(
    ("code", "exit_status", "line"),
    [
        ("ThrottlingException", 9, "KMS Decrypt kept failing (ThrottlingException, 1 attempts): retry later"),
        ("DisabledException", 8, "KMS Decrypt refused: DisabledException: says no"),
        (
            "InvalidCiphertextException",
            6,
            f"KMS refused to decrypt the credentials of run {RUN.run_id} for this worker",
        ),
        ("AccessDeniedException", 6, "KMS refused to decrypt the credentials of run"),
        ("IncorrectKeyException", 6, "KMS refused to decrypt the credentials of run"),
    ],
)
def test_kms_refusing_or_failing_the_decryption_is_one_status(
    monkeypatch: pytest.MonkeyPatch, code: str, exit_status: int, line: str
) -> None:
    client = boto3.client("kms", region_name="eu-west-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_client_error("decrypt", code, "says no", 400)
    stubber.activate()
    monkeypatch.setattr(aws, "kms", lambda: client)
    failure = refusal(records=[record()])
    assert failure.exit_status == exit_status
    assert str(failure).startswith(line)


def test_decrypted_credentials_that_are_no_sts_json_are_status_10_without_the_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = boto3.client("kms", region_name="eu-west-1", aws_access_key_id="AKIA", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.add_response("decrypt", {"Plaintext": b"secret-not-json"})
    stubber.activate()
    monkeypatch.setattr(aws, "kms", lambda: client)
    failure = refusal(records=[record()])
    assert failure.exit_status == 10
    assert str(failure) == (
        f"the decrypted credentials of integration {FIRST} for run {RUN.run_id} (plan) are not what runcreds "
        "encrypts (JSONDecodeError): tell the runcreds operator"
    )
