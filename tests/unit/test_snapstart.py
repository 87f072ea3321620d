"""Under SnapStart (template parameter SnapStart), a restored container builds its AWS clients afresh: none
of the snapshot's connections or credentials is used after a restore."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

import pytest

from runcreds import aws


def test_after_a_restore_the_clients_of_the_snapshot_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Lambda's runtime hooks module, as SnapStart's Python runtime provides it
    hooks: list[Callable[[], None]] = []
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_after_restore = hooks.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws._register_restore_hook()
    before = aws.dynamodb()

    # When the container is restored
    (after_restore,) = hooks
    after_restore()

    # Then the next call builds a new client (a new session, new connections, credentials read again)
    assert aws.dynamodb() is not before
    aws.reset_clients()
