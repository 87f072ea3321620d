"""What every scene of the demo (demo.py) shares: the run it follows, how it prints, and the command line
it runs as a worker or an auditor would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from runcreds.dal.credentials import CredentialsStore
from runcreds.models.run import Phase, RunPhase
from runcreds_dev.stack import EmbeddedStack

ACCOUNT, STACK, RUN_ID = "acme", "networking-prod", "01DSJ63P40BAZY4VW8BXXG7M4K"
OIDC_STACK, FOUR_HOURS = "data-prod", 14400


def mask(value: str, keep: int = 4) -> str:
    """Show the shape of a secret, never the secret: its first characters for access key IDs only."""
    return f"{value[:keep]}…({len(value)} chars)" if keep else f"****({len(value)} chars)"


def step(text: str) -> None:
    print(f"\n\033[1m▶ {text}\033[0m")


def show(label: str, value: Any) -> None:
    rendered = json.dumps(value, indent=2, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    print(f"  {label}: " + rendered.replace("\n", "\n  "))


def run_phase_of(phase: str) -> RunPhase:
    return RunPhase(account=ACCOUNT, stack=STACK, run_id=RUN_ID, phase=Phase(phase))


def runcreds_cli(
    stack: EmbeddedStack, *args: str, cwd: Path | None = None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command line, as a worker or an auditor runs it: a separate process with the AWS environment."""
    runcreds = Path(sys.executable).with_name("runcreds")
    env = {"PATH": os.environ.get("PATH", ""), **stack.client_env(), **(extra_env or {})}
    return subprocess.run(  # noqa: S603 - our own console script
        [str(runcreds), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def worker_cli(stack: EmbeddedStack, *args: str) -> subprocess.CompletedProcess[str]:
    return runcreds_cli(stack, "worker", *args)


def apply_session_key(stack: EmbeddedStack) -> str:
    store = CredentialsStore(stack.outputs["CredentialsTableName"], stack.client("dynamodb"))
    (record,) = store.records(run_phase_of("apply"))
    return str(record.access_key_id)
