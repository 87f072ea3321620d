"""`make demo` (`runcreds local demo`) runs to the end, and where Terraform is installed, its apply under
`runcreds worker exec` is a real one: the state's resource carries the run's session ARN and the audit
finds the apply's calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runcreds_dev import terraform

RUNCREDS = Path(sys.executable).parent / "runcreds"
RUN_ID = "01DSJ63P40BAZY4VW8BXXG7M4K"


def test_the_demo_runs_terraform_under_runcreds_when_terraform_is_here() -> None:
    # Given a fresh environment (no AWS settings of the test session's stack)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNCREDS_CREDENTIALS"))}

    # When the demo runs
    done = subprocess.run(  # noqa: S603 - our own console script
        [str(RUNCREDS), "local", "demo"], env=env, capture_output=True, text=True, timeout=240, check=False
    )

    # Then it ends well, and the Terraform step either applied for real or said in one line why not
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Terraform under runcreds: runcreds worker exec" in out
    if terraform.unavailable() is None:
        assert "Apply complete! Resources: 1 added" in out, out
        assert f'"value": "arn:aws:sts::111122223333:assumed-role/acme-networking-deployer/{RUN_ID}"' in out
        assert "ssm:PutParameter" in out
        timeline = out[out.index(f"runcreds audit {RUN_ID}") :]
        assert "PutParameter" in timeline and "arn:aws:ssm:us-east-1:111122223333:parameter/acme/" in timeline
    else:
        (skipped,) = [line for line in out.splitlines() if "skipped:" in line]
        assert terraform.unavailable() in skipped  # type: ignore[operator]
    # And an OIDC integration's four-hour session (beyond the chaining cap), broker and worker mode alike,
    # is the run's
    oidc = out[out.index("OIDC: the customer's IAM OIDC provider") :]
    sessions = [line for line in oidc.splitlines() if "Expiration:" in line]
    assert len(sessions) == 2 and all("(4.0 h ahead: a four-hour session" in line for line in sessions), oidc
    arn = f"arn:aws:sts::111122223333:assumed-role/acme-data-deployer/{RUN_ID}"
    assert [line for line in oidc.splitlines() if "get-caller-identity Arn" in line] == [
        f"  sts get-caller-identity Arn: {arn}"
    ] * 2
    assert '"sub": "account:acme:stack:data-prod:phase:plan:access:read"' in oidc
    assert "Done in" in out
