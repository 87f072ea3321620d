"""The refresh route (docs/interface.md §4, issue 11): a new session for a phase that outlives its credentials,
made once however many workers ask, and never for a phase that has finished or lost its attachment."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runcreds.dal.credentials import CredentialsStore
from runcreds.dal.keys import access_key_key
from runcreds.models.run import Phase, RunPhase
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of, attach, credentials_of, record_items

Publish = Callable[..., None]


def refresh_path(tenant: Tenant, phase: str) -> str:
    return f"/accounts/{tenant.account}/stacks/{tenant.stack}/runs/{tenant.run_id}/phases/{phase}/refresh"


def session_mapping(stack: EmbeddedStack, access_key_id: str) -> list[dict[str, Any]]:
    return list(
        stack.client("dynamodb").query(
            TableName=stack.functions["AttachApiFunction"].environment["RUNCREDS_AUDIT_SESSIONS_TABLE"],
            KeyConditionExpression="session_key = :k",
            ExpressionAttributeValues={":k": {"S": access_key_key(access_key_id)}},
        )["Items"]
    )


def test_a_refresh_opens_a_new_session_with_the_same_identity_and_records_it(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str],
    integrate: Callable[..., str], publish: Publish,
) -> None:  # fmt: skip
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    publish(tenant, "apply")
    first = credentials_of(stack, tenant, "apply")
    before = assumptions_of(role)

    answer = api.post(refresh_path(tenant, "apply"), {"integration_id": integration_id})

    assert answer.status == 200, answer.body
    (entry,) = answer.body["credentials"]
    assert entry["integration_id"] == integration_id
    assert assumptions_of(role) == before + 1
    second = credentials_of(stack, tenant, "apply")
    assert second["AccessKeyId"] != first["AccessKeyId"]
    assert second["Expiration"].startswith(entry["expires_at"][:19])
    (item,) = record_items(stack, tenant, "apply")
    assert item["generation"]["N"] == "1"
    # The new key is attributable to the run phase (the audit index's akid# mapping)
    (mapping,) = session_mapping(stack, second["AccessKeyId"])
    assert mapping["run_id"]["S"] == tenant.run_id and mapping["phase"]["S"] == "apply"
    # Same identity: the session carries the run ID and the same external ID was accepted
    identity = stack.client(
        "sts", stack.session(second["AccessKeyId"], second["SecretAccessKey"], second["SessionToken"])
    ).get_caller_identity()
    assert identity["Arn"].endswith(f"/{tenant.run_id}")
    # Neither the body nor the logs hold a secret
    assert second["SecretAccessKey"] not in str(answer.body) and second["SessionToken"] not in str(answer.body)
    assert second["SecretAccessKey"] not in stack.logs.text() and second["SessionToken"] not in stack.logs.text()


def test_ten_concurrent_refreshes_make_one_assume_role(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str],
    integrate: Callable[..., str], publish: Publish,
) -> None:  # fmt: skip
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    publish(tenant, "apply")
    before = assumptions_of(role)
    # Ten warm containers, as Lambda would run a burst (cold starts here take seconds on a busy machine)
    stack.functions["AttachApiFunction"].warm(10)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(lambda _: api.post(refresh_path(tenant, "apply"), {"integration_id": integration_id}), range(10))
        )

    assert [a.status for a in answers] == [200] * 10, [a.body for a in answers]
    assert assumptions_of(role) == before + 1
    assert len({a.body["credentials"][0]["expires_at"] for a in answers}) == 1
    (item,) = record_items(stack, tenant, "apply")
    assert item["generation"]["N"] == "1"


def test_after_run_phase_finished_the_route_answers_409_phase_finished(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str],
    integrate: Callable[..., str], publish: Publish,
) -> None:  # fmt: skip
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    publish(tenant, "plan")
    publish(tenant, "plan", detail_type="Run Phase Finished")
    before = assumptions_of(role)

    for body in ({"integration_id": integration_id}, {}):
        answer = api.post(refresh_path(tenant, "plan"), body)
        assert answer.status == 409, answer.body
        assert answer.body["code"] == "phase_finished"
        assert "finished" in answer.message
    assert assumptions_of(role) == before
    assert "RefreshFailures" in stack.logs.text()


def test_a_phase_never_vended_answers_404(api: ApiClient, stack: EmbeddedStack, tenant: Tenant) -> None:
    answer = api.post(refresh_path(tenant, "apply"), {})
    assert answer.status == 404, answer.body
    assert "never vended" in answer.message


def test_no_refresh_once_the_attachment_is_gone_or_no_longer_grants_the_access(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, make_role: Callable[..., str],
    integrate: Callable[..., str], publish: Publish,
) -> None:  # fmt: skip
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    publish(tenant, "apply")
    publish(tenant, "plan")
    before = assumptions_of(role)

    # The write access is taken away: the apply gets no new session (the plan still does)
    assert attach(api, tenant, integration_id, read=True, write=False).status == 200
    before = assumptions_of(role)
    answer = api.post(refresh_path(tenant, "apply"), {"integration_id": integration_id})
    assert (answer.status, answer.body["code"]) == (409, "access_revoked"), answer.body
    assert assumptions_of(role) == before

    # Detached: nothing at all
    assert api.delete(f"/accounts/{tenant.account}/stacks/{tenant.stack}/integrations/{integration_id}").status == 204
    answer = api.post(refresh_path(tenant, "plan"), {})
    assert (answer.status, answer.body["code"]) == (409, "detached"), answer.body
    assert assumptions_of(role) == before


def test_a_refresh_that_loses_the_race_with_finished_does_not_bring_the_credentials_back(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish,
) -> None:  # fmt: skip
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "apply")
    run = RunPhase(account=tenant.account, stack=tenant.stack, run_id=tenant.run_id, phase=Phase.APPLY)
    store = CredentialsStore(stack.outputs["CredentialsTableName"], stack.client("dynamodb"))
    claimed = store.claim_refresh(run, integration_id, "token", 30, fresh_since=0)
    assert claimed is not None

    # Run Phase Finished arrives while the refresh is assuming the role
    publish(tenant, "apply", detail_type="Run Phase Finished")
    from datetime import UTC, datetime

    fresh = claimed.model_copy(update={"generation": 1, "issued_at": datetime.now(UTC)})
    assert store.replace_refreshed(fresh, "token", previous_generation=0, ttl=0) == 0

    (item,) = record_items(stack, tenant, "apply")
    assert item["status"]["S"] == "finished"
    assert "ciphertext" not in item
