"""The events/ samples (the ones `sam local invoke -e` takes) drive the functions as the template runs them."""

from __future__ import annotations

import json

import pytest

from runcreds_dev.stack import EmbeddedStack
from tests.support import load_event


@pytest.mark.parametrize(
    ("sample", "status"),
    [
        ("api/create_integration.json", 201),
        ("api/create_integration_invalid.json", 400),
        ("api/list_integrations.json", 200),
        ("api/attach_integration.json", 404),  # the sample's integration does not exist here
        ("api/list_attachments.json", 200),
        ("api/update_integration.json", 404),  # the sample's integration does not exist here
        ("api/delete_integration.json", 404),
        ("api/get_trust_policy.json", 404),
    ],
)
def test_api_samples(stack: EmbeddedStack, sample: str, status: int) -> None:
    response = stack.functions["AttachApiFunction"].invoke(load_event(sample))
    assert response["statusCode"] == status
    body = json.loads(response["body"])
    if status >= 400:
        assert body["message"]


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("run_phase_started_plan.json", {}),
        ("run_phase_started_apply.json", {}),
        ("run_phase_finished_apply.json", {"finished": 0}),
    ],
)
def test_run_phase_samples_are_handled(stack: EmbeddedStack, sample: str, expected: dict[str, int]) -> None:
    # Nothing is attached to the sample's stack in this stack: the vend finds no integration, the finish
    # finds no record; the vend only reads, the finish writes the phase's tombstone and reads.
    mark = stack.aws.calls.mark()
    event = load_event(sample)
    result = stack.functions["VendCredentialsFunction"].invoke(event)
    assert result == expected
    writes = {"PutItem"} if event["detail-type"] == "Run Phase Finished" else set()
    assert {action for _service, action in stack.aws.calls.since(mark)} <= {"Query"} | writes
