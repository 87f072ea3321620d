"""Many run events at once against the embedded AWS: each phase vended exactly once, none lost."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of, events_for, record_items

EVENTS = 200


# Slow by nature (200 vends, serialised by the embedded DynamoDB): 50-120 s on a 2-core machine.
@pytest.mark.timeout(400)
def test_200_distinct_run_events_at_once_are_each_vended_exactly_once(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    vend_here: Callable[[dict[str, Any]], Any],
) -> None:
    # Given one attached role and 200 runs of the stack starting their plan at the same moment
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    assumed = assumptions_of(role)
    runs = [Tenant(tenant.account, tenant.stack, f"{tenant.run_id}-{n}") for n in range(EVENTS)]
    vend_here(runs[0].event("drift"))  # warm: the broker's session and the clients exist before the rush

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda run: vend_here(run.event("plan")), runs))

    # Then 200 records, no error, one AssumeRole and one Ready event per run phase
    assert all(result == {"ready": [integration_id]} for result in results)
    assert assumptions_of(role) - assumed == EVENTS + 1
    for run in runs:
        (item,) = record_items(stack, run, "plan")
        assert item["status"]["S"] == "ready"
        assert "unannounced" not in item
    ready = [e for e in events_for(stack, tenant, "Run Phase Credentials Ready") if e["phase"] == "plan"]
    assert sorted(e["run_id"] for e in ready) == sorted(run.run_id for run in runs)
