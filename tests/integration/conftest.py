"""Fixtures of the tests that drive the credentials store directly (its claims, completions and phase)."""

from __future__ import annotations

import pytest

from runcreds.dal.credentials import CredentialsStore
from runcreds.models.run import Phase, RunPhase
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant


@pytest.fixture
def store(stack: EmbeddedStack) -> CredentialsStore:
    """The credentials store over the embedded stack's table, as the functions' code holds it."""
    return CredentialsStore(stack.outputs["CredentialsTableName"], stack.client("dynamodb"))


@pytest.fixture
def run(tenant: Tenant) -> RunPhase:
    """The tenant's run, in its plan phase."""
    return RunPhase(account=tenant.account, stack=tenant.stack, run_id=tenant.run_id, phase=Phase.PLAN)
