"""Worker CLI benchmark: `runcreds worker credentials` in a fresh process ÷ a fresh process that imports
boto3, creates the same clients and makes the same calls — the credentials table's Query and KMS Decrypt
(goal ≤ 1.3).

    .venv/bin/python bench/worker_cli.py [--trials 7]

The worker side is the `runcreds` command a run's worker runs (the console script of this environment),
with the embedded stack's worker environment (`stack.client_env()`), printing the credential_process JSON
to a discarded stdout. The raw side replays the calls the command made on a recording run (bench/
cold_child.py `record-cli`, botocore event hooks): the same operations, parameters, regions and identity.
Trials are interleaved (worker, raw, raw, worker, ...); each process is timed from spawn to exit; the ratio
is the median of the paired trials' ratios. The embedded server counts every trial's requests: the two
sides must make the same ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GOAL = 1.3
UNCHANGED = "@@no-run-id@@"  # the record is read, not written: the raw side replays the calls unchanged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=7)
    args = parser.parse_args()
    from bench.cold_start import run
    from bench.results import record
    from runcreds.logic.trust_policy import trust_policy_for
    from runcreds_cli.sigv4_client import ApiClient
    from runcreds_dev.stack import EmbeddedStack
    from tests.support import Tenant, attach, create_integration, create_role

    with EmbeddedStack(template_path=ROOT / "template.yaml", stack_name="runcreds-bench") as stack:
        account, name, run_id = "bench", "networking", f"run-{uuid.uuid4().hex[:12]}"
        role_arn = create_role(stack, trust_policy_for(stack.outputs["BrokerRoleArn"], account), "bench-role")
        api = ApiClient(stack.outputs["ApiUrl"], stack.session())
        tenant = Tenant(account, name, "01BENCH")
        assert attach(api, tenant, create_integration(api, tenant, role_arn)).status == 200
        stack.put_event("Run Phase Started", {"account": account, "stack": name, "run_id": run_id, "phase": "plan"})
        stack.router.drain()

        env = {**os.environ, **stack.client_env()}
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            env.pop(key, None)
        argv = ["worker", "credentials", "--account", account, "--stack", name, "--run-id", run_id, "--phase", "plan"]
        runcreds = str(Path(sys.executable).with_name("runcreds"))
        child = [sys.executable, str(ROOT / "bench/cold_child.py")]
        with tempfile.TemporaryDirectory() as tmp:
            calls_path = str(Path(tmp, "worker.calls"))
            mark = stack.aws.calls.mark()
            run([*child, "record-cli", calls_path, *argv], env)
            recorded = sorted(stack.aws.calls.since(mark))
            times: dict[str, list[float]] = {"worker": [], "raw": []}
            for trial in range(args.trials + 1):  # the first round warms the server's code paths
                for side in ("worker", "raw") if trial % 2 == 0 else ("raw", "worker"):
                    cmd = [runcreds, *argv] if side == "worker" else [*child, "raw", calls_path, UNCHANGED, UNCHANGED]
                    mark = stack.aws.calls.mark()
                    elapsed = run(cmd, env)
                    calls = sorted(stack.aws.calls.since(mark))
                    if calls != recorded:
                        raise RuntimeError(f"{side} made {calls}, the recording {recorded}")
                    if trial:
                        times[side].append(elapsed)
    ratios = sorted(w / r for w, r in zip(times["worker"], times["raw"], strict=True))
    median = statistics.median(ratios)
    record("cold start: worker CLI credentials", ratios, f"<= {GOAL}", median <= GOAL)
    print(
        f"cold start: worker CLI credentials   worker {statistics.median(times['worker']) * 1000:5.0f} ms  "
        f"raw {statistics.median(times['raw']) * 1000:5.0f} ms  ratio {median:.2f} (min {ratios[0]:.2f}, "
        f"max {ratios[-1]:.2f})  goal <= {GOAL}  [{len(recorded)} AWS requests each side: {recorded}]"
    )
    print(f"trials: {args.trials} per side (after 1 warm-up), interleaved; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
