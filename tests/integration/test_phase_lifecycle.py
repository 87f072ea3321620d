"""A finished run phase stays closed (docs/interface.md §1): whatever order EventBridge delivers in, and whatever
Lambda retries or an operator redrives, a phase whose Finished was seen never gets credentials again."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runcreds.dal.credentials import Claim, CredentialsStore
from runcreds.models.run import Phase, RunPhase
from runcreds_cli.worker import CredentialsFetcher, PhaseFinishedError
from runcreds_dev.lambda_runtime import FunctionError
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of, events_for, record_items

Publish = Callable[..., None]
FINISHED = "Run Phase Finished"


def run_phase(tenant: Tenant, phase: str) -> RunPhase:
    return RunPhase(account=tenant.account, stack=tenant.stack, run_id=tenant.run_id, phase=Phase(phase))


def assert_closed(stack: EmbeddedStack, tenant: Tenant, phase: str) -> None:
    """No credentials in the table, none announced, and the worker told the phase is over (exit 7)."""
    assert not [i for i in record_items(stack, tenant, phase) if "ciphertext" in i or i["status"]["S"] != "finished"]
    assert not events_for(stack, tenant, "Run Phase Credentials Ready")
    with pytest.raises(PhaseFinishedError) as caught:
        CredentialsFetcher(stack.outputs["CredentialsTableName"]).fetch(run_phase(tenant, phase))
    assert caught.value.exit_status == 7


def test_a_started_delivered_after_its_finished_vends_nothing(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # Given an attached role, and a phase whose Finished arrives first (EventBridge keeps no order)
    role = make_role(f"{tenant.account}@*")
    integrate(tenant, role)
    assumed = assumptions_of(role)
    publish(tenant, "apply", detail_type=FINISHED)

    # When its Started arrives late
    publish(tenant, "apply")

    # Then the role was not assumed, nothing is stored or announced, and the run is not made to fail
    assert assumptions_of(role) == assumed
    assert_closed(stack, tenant, "apply")
    assert not events_for(stack, tenant, "Run Phase Credentials Failed")


def test_a_retry_of_a_throttled_started_after_the_finished_vends_nothing(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str]
) -> None:
    # Given a Started that failed on STS throttling (its three attempts), so nothing was recorded
    role = make_role(f"{tenant.account}@*")
    integrate(tenant, role)
    vend = stack.functions["VendCredentialsFunction"]
    vend.warm()  # the broker's own session is cached: the throttles hit the customer role's AssumeRole
    stack.aws.strict_sts.inject("Throttling", times=4)  # every attempt botocore makes (1 + 3 retries)
    try:
        with pytest.raises(FunctionError):
            vend.invoke(tenant.event("apply"))
    finally:
        stack.aws.strict_sts.clear_faults()
    assumed = assumptions_of(role)

    # When the phase finishes, and then Lambda's retry (or a dead-letter redrive) of the Started comes
    vend.invoke(tenant.event("apply", detail_type=FINISHED))
    vend.invoke(tenant.event("apply"))

    # Then no credentials: not assumed, not stored, not announced
    assert assumptions_of(role) == assumed
    assert_closed(stack, tenant, "apply")


def test_finished_with_nothing_vended_leaves_the_phase_closed_for_the_worker(
    stack: EmbeddedStack, tenant: Tenant, publish: Publish
) -> None:
    # Given no integration at all: a Finished still closes the phase
    publish(tenant, "plan", detail_type=FINISHED)
    assert_closed(stack, tenant, "plan")


def test_finish_racing_a_released_claim_leaves_no_record_of_keys_only(stack: EmbeddedStack, tenant: Tenant) -> None:
    # Given a pending claim, released (deleted) by its invocation just after Finished's query saw it
    table = stack.outputs["CredentialsTableName"]
    client = stack.client("dynamodb")
    store = CredentialsStore(table, client)
    run = run_phase(tenant, "plan")
    integration_id = "01" + "A" * 24
    assert store.claim(run, integration_id, "token") is Claim.CLAIMED

    def release_first(**_kwargs: object) -> None:
        store.release(run, integration_id, "token")

    client.meta.events.register("before-call.dynamodb.UpdateItem", release_first)

    # When the phase finishes
    store.finish(run)

    # Then no item of keys only was created, and the worker reads the phase as finished, without a traceback
    assert record_items(stack, tenant, "plan") == []
    assert not store.phase_is_open(run)
    with pytest.raises(PhaseFinishedError):
        CredentialsFetcher(table).fetch(run)
