"""The vend's metrics that the template alarms on (FailedVendsAlarm, CredentialsKeyUnusableAlarm,
BrokerUnavailableAlarm, InvalidRunEventsAlarm: docs/operations.md), counted in this process (`vend_here`)
against the embedded AWS: each outcome counts its own metric once, and no other outcome's. test_alarms.py
checks that the template's alarms watch these names; here the vend is checked to emit them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from runcreds.exceptions import TransientAwsError
from runcreds.observability import metrics
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, load_event, trust_policy

Vend = Callable[[dict[str, Any]], Any]


def counted() -> dict[str, tuple[str, list[float]]]:
    """What the invocation counted so far: each metric's unit and values (as Lambda would flush them)."""
    return {name: (metric["Unit"], list(metric["Value"])) for name, metric in metrics.metric_set.items()}


def test_a_role_refusing_counts_one_failed_vend(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    stack.customer_client("iam").update_assume_role_policy(
        RoleName=role.rsplit("/", 1)[1],
        PolicyDocument=json.dumps(trust_policy(stack.outputs["BrokerRoleArn"], "someone-else@*")),
    )
    assert vend_here(tenant.event("plan")) == {"failed": [integration_id]}
    assert counted() == {"CredentialsRefused": ("Count", [1.0])}


@pytest.mark.parametrize("code", ["DisabledException", "AccessDeniedException"])
def test_kms_refusing_the_key_counts_one_unusable_key_not_a_refused_role(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    vend_here: Vend,
    code: str,
) -> None:
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))
    key = stack.functions["VendCredentialsFunction"].environment["AWS_ACCESS_KEY_ID"]
    with stack.aws.faults.inject("kms", "Encrypt", code, when=lambda r: r.access_key == key, times=1):
        assert vend_here(tenant.event("apply")) == {"failed": [integration_id]}
    assert counted() == {"CredentialsKeyUnusable": ("Count", [1.0])}


def test_the_brokers_own_hop_refused_counts_broker_unavailable_and_the_retry_vends(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))
    stack.aws.strict_sts.inject("AccessDenied", times=1, status=403)  # the first AssumeRole: to BrokerRole
    try:
        with pytest.raises(TransientAwsError, match=integration_id):
            vend_here(tenant.event("plan"))
    finally:
        stack.aws.strict_sts.clear_faults()
    assert counted() == {"BrokerUnavailable": ("Count", [1.0])}
    metrics.clear_metrics()  # as Lambda flushes them after the invocation
    assert vend_here(tenant.event("plan")) == {"ready": [integration_id]}
    assert counted() == {"CredentialsVended": ("Count", [1.0])}


def test_an_invalid_event_counts_one_invalid_run_event(vend_here: Vend) -> None:
    assert vend_here(load_event("invalid/at_in_stack.json")).keys() == {"dropped"}
    assert counted() == {"InvalidRunEvents": ("Count", [1.0])}


def test_a_worker_mode_vend_counts_one_worker_instruction(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"), assume_role_on_worker=True)
    assert vend_here(tenant.event("apply")) == {"ready": [integration_id]}
    assert counted() == {"WorkerInstructions": ("Count", [1.0])}


def test_a_started_after_its_finished_counts_one_started_after_finished(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    integrate(tenant, make_role(f"{tenant.account}@*"))
    assert vend_here(tenant.event("plan", "Run Phase Finished")) == {"finished": 0}
    metrics.clear_metrics()  # as Lambda flushes them after the invocation
    assert vend_here(tenant.event("plan")).keys() == {"phase_finished"}
    assert counted() == {"StartedAfterFinished": ("Count", [1.0])}
