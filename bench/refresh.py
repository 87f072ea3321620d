"""Refresh benchmark: the refresh route's handler wall time ÷ the AssumeRole + Encrypt + write it cannot
avoid, made raw with boto3 against the same embedded AWS; and `runcreds worker exec`'s start-up (the time
until the child runs).

    .venv/bin/python bench/refresh.py [--rounds 50]

The handler is the deployed attach function (functions/attach_api), called in this process with its template
environment and role. Each round refreshes a fresh phase (so every call makes its AssumeRole).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import record  # noqa: E402 - run as a script: the repository root is not on the path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from runcreds.logic.trust_policy import trust_policy_for
    from runcreds_cli.sigv4_client import ApiClient
    from runcreds_dev.lambda_worker import LocalContext
    from runcreds_dev.stack import EmbeddedStack
    from tests.support import Tenant, attach, create_integration, create_role

    with EmbeddedStack(template_path=ROOT / "template.yaml", stack_name="runcreds-bench") as stack:
        account, name = "bench", "networking"
        broker = stack.outputs["BrokerRoleArn"]
        role_arn = create_role(stack, trust_policy_for(broker, account), "bench-role")
        api = ApiClient(stack.outputs["ApiUrl"], stack.session())
        tenant = Tenant(account, name, "01BENCH")
        integration_id = create_integration(api, tenant, role_arn)
        assert attach(api, tenant, integration_id).status == 200

        def vend(run_id: str) -> None:
            stack.put_event("Run Phase Started", {"account": account, "stack": name, "run_id": run_id, "phase": "plan"})
            stack.router.drain()

        spec = stack.template.functions()["AttachApiFunction"]
        env = stack.functions["AttachApiFunction"].environment
        os.environ.update(env)
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        module_spec = importlib.util.spec_from_file_location(spec.module, spec.code_uri / f"{spec.module}.py")
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        handler = getattr(module, spec.function_name)
        context = LocalContext("bench", 30000, "bench")
        sink = io.StringIO()

        def refresh_event(run_id: str) -> dict[str, Any]:
            path = f"/accounts/{account}/stacks/{name}/runs/{run_id}/phases/plan/refresh"
            return {
                "resource": "/accounts/{account}/stacks/{stack}/runs/{run_id}/phases/{phase}/refresh",
                "path": path, "httpMethod": "POST", "headers": {"Content-Type": "application/json"},
                "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
                "pathParameters": {"account": account, "stack": name, "run_id": run_id, "phase": "plan"},
                "requestContext": {"httpMethod": "POST", "resourcePath": "/", "path": "/v1" + path, "stage": "v1",
                                   "requestId": "bench", "identity": {}},
                "body": json.dumps({"integration_id": integration_id}), "isBase64Encoded": False,
            }  # fmt: skip

        def handler_quietly(run_id: str) -> None:
            with contextlib.redirect_stdout(sink):
                result = handler(refresh_event(run_id), context)
            sink.seek(0)
            sink.truncate()
            assert result["statusCode"] == 200, result

        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"], region_name="us-east-1",
        )  # fmt: skip
        endpoint = stack.endpoint_url
        raw_ddb, raw_kms = (
            session.client("dynamodb", endpoint_url=endpoint),
            session.client("kms", endpoint_url=endpoint),
        )
        broker_creds = session.client("sts", endpoint_url=endpoint).assume_role(
            RoleArn=broker, RoleSessionName="bench-raw"
        )["Credentials"]
        raw_sts = boto3.Session(
            aws_access_key_id=broker_creds["AccessKeyId"], aws_secret_access_key=broker_creds["SecretAccessKey"],
            aws_session_token=broker_creds["SessionToken"], region_name="us-east-1",
        ).client("sts", endpoint_url=endpoint)  # fmt: skip

        def raw_refresh(run_id: str) -> None:
            creds = raw_sts.assume_role(
                RoleArn=role_arn, RoleSessionName=run_id, ExternalId=f"{account}@{integration_id}@{name}@read",
                DurationSeconds=3600, SourceIdentity=run_id, Tags=[{"Key": "runcreds:run", "Value": run_id}],
                TransitiveTagKeys=["runcreds:run"],
            )["Credentials"]  # fmt: skip
            blob = raw_kms.encrypt(
                KeyId=env["RUNCREDS_CREDENTIALS_KEY_ARN"],
                Plaintext=json.dumps({k: str(v) for k, v in creds.items()}).encode(),
                EncryptionContext={"runcreds:run": run_id},
            )["CiphertextBlob"]
            record = {"run_key": {"S": f"raw#{run_id}"}, "integration_id": {"S": integration_id},
                      "ciphertext": {"B": blob}}  # fmt: skip
            keys = (f"akid#{creds['AccessKeyId']}", f"si#{run_id}")
            items: list[Any] = [{"Put": {"TableName": env["RUNCREDS_CREDENTIALS_TABLE"], "Item": record}}]
            sessions = env["RUNCREDS_AUDIT_SESSIONS_TABLE"]
            items += [{"Put": {"TableName": sessions, "Item": {"session_key": {"S": k}, "scope": {"S": run_id}}}}
                      for k in keys]  # fmt: skip
            raw_ddb.transact_write_items(TransactItems=items)

        runs = [f"run-{i}" for i in range(args.rounds + 3)]
        for run_id in runs:
            vend(run_id)
        for i in range(3):  # warm both sides
            handler_quietly(runs[i])
            raw_refresh(f"warm-{i}")
        handler_times, raw_times = [], []
        for run_id in runs[3:]:
            started = time.perf_counter()
            handler_quietly(run_id)
            handler_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            raw_refresh("raw-" + run_id)
            raw_times.append(time.perf_counter() - started)

        # exec's start-up: from the command to the child's first instruction.
        vend("exec-run")
        child_env = {**os.environ, **stack.client_env(), "RUNCREDS_API_URL": stack.outputs["ApiUrl"]}
        for key in ("AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME"):
            child_env.pop(key, None)
        child_env.update(stack.client_env())
        startups = []
        runcreds = str(Path(sys.executable).parent / "runcreds")
        for _ in range(5):
            started = time.time()
            out = subprocess.run(
                [runcreds, "worker", "exec", "--account", account, "--stack", name, "--run-id", "exec-run",
                 "--phase", "plan", "--", sys.executable, "-S", "-c", "import time; print(time.time())"],
                env=child_env, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            startups.append(float(out.strip()) - started)

        handler_ms, raw_ms = statistics.median(handler_times) * 1000, statistics.median(raw_times) * 1000
        print(f"rounds: {args.rounds} (after 3 warm-up), python {sys.version.split()[0]}")
        print(f"refresh handler, median wall time: {handler_ms:.2f} ms")
        print(f"raw AssumeRole + Encrypt + TransactWriteItems, median: {raw_ms:.2f} ms")
        ratios = [h / r for h, r in zip(handler_times, raw_times, strict=True)]
        print(f"ratio handler / raw: {handler_ms / raw_ms:.3f}  (paired: median {statistics.median(ratios):.3f}, "
              f"min {min(ratios):.3f}, max {max(ratios):.3f}; goal <= 1.25)")  # fmt: skip
        print(f"exec start-up until the child runs, median of 5: {statistics.median(startups):.3f} s  (goal <= 1 s)")
        record("refresh route, warm: handler / raw", ratios, "<= 1.25", statistics.median(ratios) <= 1.25)
        record("worker exec start-up (s)", startups, "<= 1", statistics.median(startups) <= 1.0, unit=" s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
