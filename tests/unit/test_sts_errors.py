"""STS's answers, classified (issue 9, item 11: "5xx from STS no longer transient" survived the suite)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from runcreds.sts_calls import is_transient


def sts_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "AssumeRole")


@pytest.mark.parametrize(("code", "status"), [("InternalFailure", 500), ("ServiceUnavailable", 503), ("", 502)])
def test_a_5xx_from_sts_is_transient_whatever_its_code(code: str, status: int) -> None:
    assert is_transient(sts_error(code, status))


@pytest.mark.parametrize(("code", "status"), [("Throttling", 400), ("ThrottlingException", 400)])
def test_throttling_is_transient(code: str, status: int) -> None:
    assert is_transient(sts_error(code, status))


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("ValidationError", 400)])
def test_a_refusal_is_final(code: str, status: int) -> None:
    assert not is_transient(sts_error(code, status))
