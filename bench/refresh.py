"""Refresh benchmark: the refresh route's handler wall time ÷ the AssumeRole + Encrypt + write it cannot
avoid, made raw with boto3 against the same embedded AWS; and `runcreds worker exec`'s start-up (the time
until the child runs).

    .venv/bin/python bench/refresh.py [--rounds 50] [--no-exec] [--growing-tables]

The handler is the deployed attach function (functions/attach_api), called in this process with its template
environment and role. Each round refreshes a fresh phase (so every call makes its AssumeRole), and, interleaved
with it in the same round, makes two raw sides:

- (i) the three calls a refresh cannot avoid: AssumeRole, KMS Encrypt, one TransactWriteItems of the items
  the route writes (the record and its three session mappings, as recorded, unconditional) — the goal's
  denominator (handler ÷ raw ≤ 1.25);
- (ii) every AWS request the route made, replayed: a botocore event hook (`before-send` on every client)
  records the route's requests on a warm call, operation and parameters, and the raw side makes the same
  requests with the run ID replaced by another freshly vended phase's. Handler ÷ this is the route's own
  overhead, whatever the number of requests.

The hook counts the route's requests in every measured round (and the embedded server's count must agree).
Each round vends its two phases first and, after its three measurements, deletes what it wrote: moto's
TransactWriteItems deep-copies every table it touches, once per item, so its time grows with the tables'
contents (`--growing-tables` keeps them, to see it).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.baseline import TableBaseline  # noqa: E402 - run as a script: the repository root is not on the path
from bench.results import record  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--no-exec", action="store_true", help="skip the exec start-up measurement")
    parser.add_argument(
        "--growing-tables", action="store_true",
        help="keep every round's items (moto's transactions then slow down round after round, both sides)",
    )  # fmt: skip
    args = parser.parse_args()
    requests = _hook_every_client()

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
        from runcreds.observability import metrics

        # This process imported runcreds (for the stack) before it had the function's environment, which
        # Powertools reads when the metrics object is made: give it what Lambda's environment gives it.
        metrics.namespace = env["POWERTOOLS_METRICS_NAMESPACE"]
        metrics.service = env.get("POWERTOOLS_SERVICE_NAME")
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

        def handler_quietly(run_id: str) -> list[dict[str, Any]]:
            """The route's answer must be 200; returns the AWS requests it made (the hook's records)."""
            first = len(requests)
            with contextlib.redirect_stdout(sink):
                result = handler(refresh_event(run_id), context)
            sink.seek(0)
            sink.truncate()
            assert result["statusCode"] == 200, result
            return [r for r in requests[first:] if r["thread"] == threading.get_ident()]

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
            # The write the route cannot avoid: the record and its session mappings, the same items as the
            # route's (recorded), in one unconditional transaction, with this session's ciphertext and key.
            (write,) = [c for c in recorded if c["operation"] == "TransactWriteItems"][-1:]
            puts = [i["Put"] for i in write["params"]["TransactItems"] if "Put" in i]
            recorded_akid = next(p["Item"]["access_key_id"]["S"] for p in puts if "access_key_id" in p["Item"])
            items: list[Any] = []
            for put in _replaced(_replaced(puts, recorded_run, run_id), recorded_akid, creds["AccessKeyId"]):
                item = dict(put["Item"])
                if "ciphertext" in item:
                    item["ciphertext"] = {"B": blob}
                items.append({"Put": {"TableName": put["TableName"], "Item": item}})
            raw_ddb.transact_write_items(TransactItems=items)

        raw_clients = {"dynamodb": raw_ddb, "kms": raw_kms, "sts": raw_sts}  # the same identities as the route's

        def replay(recorded: list[dict[str, Any]], old_run: str, new_run: str) -> None:
            """The route's requests again, raw, for another vended phase (same operations and parameters)."""
            for call in recorded:
                client = raw_clients[call["service"]]
                try:
                    client._make_api_call(  # type: ignore[attr-defined]
                        call["operation"], _replaced(call["params"], old_run, new_run)
                    )
                except client.exceptions.ClientError as error:
                    if error.response["Error"]["Code"] != call["error"]:
                        raise

        warm = 3
        runs = [f"run-{i:03d}" for i in range(args.rounds + warm)]
        for run_id in runs[:warm]:
            vend(run_id)
            vend("rep-" + run_id)
        recorded: list[dict[str, Any]] = []
        for i in range(warm):  # warm the handler; its last warm call is the one replayed (and its write, raw)
            recorded = handler_quietly(runs[i])
        recorded_run = runs[warm - 1]
        for i in range(warm):
            raw_refresh(f"warm-{runs[i]}")
            replay(recorded, recorded_run, "rep-" + runs[i])
        handler_times, raw_times, replay_times, counts = [], [], [], []
        server_counts: list[int] = []
        per_call: dict[str, list[list[dict[str, Any]]]] = {"route": [], "raw": [], "replay": []}

        def sent_since(first: int) -> list[dict[str, Any]]:
            return [r for r in requests[first:] if r["thread"] == threading.get_ident()]

        growing = TableBaseline(
            stack.client("dynamodb"), (env["RUNCREDS_CREDENTIALS_TABLE"], env["RUNCREDS_AUDIT_SESSIONS_TABLE"])
        )

        for run_id in runs[warm:]:
            vend(run_id)
            vend("rep-" + run_id)
            mark = stack.aws.calls.mark()
            started = time.perf_counter()
            made = handler_quietly(run_id)
            handler_times.append(time.perf_counter() - started)
            server_counts.append(len(stack.aws.calls.since(mark)))
            counts.append(len(made))
            per_call["route"].append(made)
            first = len(requests)
            started = time.perf_counter()
            raw_refresh("raw-" + run_id)
            raw_times.append(time.perf_counter() - started)
            per_call["raw"].append(sent_since(first))
            first = len(requests)
            started = time.perf_counter()
            replay(recorded, recorded_run, "rep-" + run_id)
            replay_times.append(time.perf_counter() - started)
            per_call["replay"].append(sent_since(first))
            if not args.growing_tables:
                growing.restore()
        if server_counts != counts:
            raise RuntimeError(f"the hook counted {counts}, the embedded server {server_counts}")

        # exec's start-up: from the command to the child's first instruction.
        startups: list[float] = []
        if not args.no_exec:
            startups = exec_startups(stack, vend, account, name)

        summary(args.rounds, warm, recorded, counts, handler_times, raw_times, replay_times)
        for side, rounds in per_call.items():
            print(f"     per request, {side}: " + ", ".join(
                f"{c['service']}:{c['operation']}[{len(c['params'].get('TransactItems', []))}] "
                f"{statistics.median(r[i]['seconds'] for r in rounds) * 1000:.1f} ms"
                if c["operation"] == "TransactWriteItems" else
                f"{c['service']}:{c['operation']} {statistics.median(r[i]['seconds'] for r in rounds) * 1000:.1f} ms"
                for i, c in enumerate(rounds[0])
            ))  # fmt: skip
        if startups:
            print(f"exec start-up until the child runs, median of 5: {statistics.median(startups):.3f} s  "
                  "(goal <= 1 s)")  # fmt: skip
            record("worker exec start-up (s)", startups, "<= 1", statistics.median(startups) <= 1.0, unit=" s")
    return 0


def exec_startups(stack: Any, vend: Any, account: str, name: str) -> list[float]:
    """exec's start-up: from the command to the child's first instruction."""
    vend("exec-run")
    child_env = {**os.environ, **stack.client_env(), "RUNCREDS_API_URL": stack.outputs["ApiUrl"]}
    for key in ("AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME"):
        child_env.pop(key, None)
    child_env.update(stack.client_env())
    startups: list[float] = []
    runcreds = str(Path(sys.executable).parent / "runcreds")
    for _ in range(5):
        started = time.time()
        out = subprocess.run(
            [runcreds, "worker", "exec", "--account", account, "--stack", name, "--run-id", "exec-run",
             "--phase", "plan", "--", sys.executable, "-S", "-c", "import time; print(time.time())"],
            env=child_env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        startups.append(float(out.strip()) - started)
    return startups


def summary(
    rounds: int, warm: int, recorded: list[dict[str, Any]], counts: list[int],
    handler_times: list[float], raw_times: list[float], replay_times: list[float],
) -> None:  # fmt: skip
    def ms(samples: list[float]) -> str:
        return (
            f"{statistics.median(samples) * 1000:.2f} ms (min {min(samples) * 1000:.2f}, max {max(samples) * 1000:.2f})"
        )

    def paired(denominators: list[float]) -> list[float]:
        return [h / d for h, d in zip(handler_times, denominators, strict=True)]

    def figures(ratios: list[float]) -> str:
        return f"median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"

    operations = ", ".join(f"{c['service']}:{c['operation']}" for c in recorded)
    print(f"rounds: {rounds} (after {warm} warm-up), interleaved, python {sys.version.split()[0]}")
    print(f"AWS requests per refresh (botocore hook): median {statistics.median(counts):g} "
          f"(min {min(counts)}, max {max(counts)}): {operations}")  # fmt: skip
    print(f"refresh handler, wall time: {ms(handler_times)}")
    print(f"(i)  raw AssumeRole + Encrypt + TransactWriteItems: {ms(raw_times)}")
    print(f"(ii) raw, the route's {len(recorded)} requests replayed: {ms(replay_times)}")
    to_raw, to_replay = paired(raw_times), paired(replay_times)
    print(f"(i)  handler / raw 3 calls, paired: {figures(to_raw)}; goal <= 1.25")
    print(f"(ii) handler / the route's {len(recorded)} requests raw, paired: {figures(to_replay)}")
    record("refresh route, warm: handler / raw", to_raw, "<= 1.25", statistics.median(to_raw) <= 1.25)
    record(f"refresh route, warm: handler / its {len(recorded)} requests raw", to_replay, "", None)
    record("refresh route: AWS requests per refresh", [float(c) for c in counts], "", None)


def _hook_every_client() -> list[dict[str, Any]]:
    """A botocore event hook on every client created from now on: each request the process sends, with its
    service, operation, parameters (as the caller gave them), error code and thread (the embedded stack's own
    threads send requests too), appended to the list returned."""
    import botocore.session

    sent: list[dict[str, Any]] = []
    pending: dict[int, list[dict[str, Any]]] = {}  # per thread: provided, not yet sent
    last: dict[int, dict[str, Any]] = {}

    def provide(params: dict[str, Any], model: Any, **_: Any) -> None:
        thread = threading.get_ident()
        call = {"service": model.service_model.service_name, "operation": model.name,
                "params": copy.deepcopy(params), "error": None, "thread": thread}  # fmt: skip
        pending.setdefault(thread, []).append(call)

    def before_send(**_: Any) -> None:
        thread = threading.get_ident()
        waiting = pending.get(thread)
        # An AssumeRole for credentials nests inside another call's signing; a retry is sent without a provide.
        call = last[thread] = waiting.pop() if waiting else {**last[thread], "retry": True}
        call["sent_at"] = time.perf_counter()
        sent.append(call)

    def after_call(parsed: dict[str, Any], **_: Any) -> None:
        call = last[threading.get_ident()]
        call["error"] = parsed.get("Error", {}).get("Code")
        call["seconds"] = time.perf_counter() - call["sent_at"]  # sent until parsed (signing is before)

    create_client = botocore.session.Session.create_client

    def hooked(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("provide-client-params.*.*", provide)
        client.meta.events.register("before-send.*.*", before_send)
        client.meta.events.register("after-call.*.*", after_call)
        return client

    botocore.session.Session.create_client = hooked  # type: ignore[method-assign]
    return sent


def _replaced(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replaced(v, old, new) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
