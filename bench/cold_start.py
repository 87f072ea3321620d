"""Cold-start benchmark: per function, a fresh process importing the handler and serving its first event ÷ a
fresh process importing boto3, creating the same clients and making the same calls (goal ≤ 1.3 each).

    .venv/bin/python bench/cold_start.py [--trials 7] [--only vend,refresh]

Both sides run against the embedded stack's moto server (strict STS in front), each in a process of its own
with the function's environment from the template (`stack.functions[...]`: its settings, its role's
credentials, the template's log level; tracing off, as there is no X-Ray daemon). The handler side is the
embedded stack's Lambda container (`runcreds_dev.lambda_worker`) serving one event and exiting. The raw
side replays the AWS calls that the handler made on a recording run (bench/cold_child.py records them with
botocore's event hooks): the same operations, parameters, regions and identities, with a fresh run ID.
A third side, the floor (cold_child.py `floor`), is the raw side plus the least the stack costs any handler
(pydantic with one model, Powertools' Logger and Metrics): floor ÷ raw is printed beside each ratio as a
reference — how much of the goal the stack itself takes before any runcreds code runs.
Trials are interleaved (each side first in turn) so that load on the shared machine hits all alike;
each process is timed from spawn to exit; the ratio is the median of the paired trials' ratios. The AWS
requests of every trial are counted on the server: the two sides must make the same ones.

    .venv/bin/python bench/cold_start.py --bytecode [--trials 5] [--only vend,attach]

measures instead what the layer's bytecode is worth on Lambda, whose /opt is read-only: the handler side
alone, three times a trial, each time with the layer as its Makefile builds it (layers/runcreds/Makefile,
for this machine's platform) on PYTHONPATH, every file dated 1980-01-01 as SAM's zip dates it, and no
bytecode written (-B): without bytecode (what SAM's python3.12 build shipped), with timestamp-based
bytecode (stale on arrival: its sources' dates are not the ones it recorded), and with this build's
hash-based bytecode. Printed: each one's time ÷ the time without bytecode.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GOAL = 1.3
LAYERS = {  # --bytecode's sides: how the layer's modules reach Lambda
    "none": "no bytecode",  # what SAM's python3.12 build shipped
    "timestamp": "timestamp bytecode",  # stale on arrival
    "hash": "hash bytecode",  # the layer's Makefile
}


@dataclass
class Case:
    name: str
    function: str  # the template's logical ID
    prepare: Callable[[str], None]  # makes what the first event needs (untimed), given the trial's token
    event: Callable[[str], dict[str, Any]]  # the first event, given the trial's token
    tokenised: bool  # whether the token appears in the calls (fresh writes per trial)


def api_event(method: str, resource: str, params: dict[str, str], body: Any = None) -> dict[str, Any]:
    path = resource
    for key, value in params.items():
        path = path.replace("{" + key + "}", value)
    return {
        "resource": resource, "path": path, "httpMethod": method, "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": params,
        "requestContext": {"httpMethod": method, "resourcePath": resource, "path": "/v1" + path, "stage": "v1",
                           "requestId": "bench", "identity": {}},
        "body": None if body is None else json.dumps(body), "isBase64Encoded": False,
    }  # fmt: skip


def run(cmd: list[str], env: dict[str, str], stdin: str = "", pass_fds: tuple[int, ...] = ()) -> float:
    started = time.perf_counter()
    process = subprocess.run(
        cmd, input=stdin, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=pass_fds
    )
    elapsed = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(f"{cmd[1:4]} failed:\n{process.stderr[-3000:]}")
    return elapsed


def layer_trees(tmp: Path) -> dict[str, Path]:
    """The layer three ways (LAYERS), built for this machine by its own Makefile, every file dated as
    SAM's zip dates it."""
    built = tmp / "built"
    make = ["make", "-s", "-C", str(ROOT / "layers" / "runcreds"), "build-RuncredsLayer", f"ARTIFACTS_DIR={built}"]
    done = subprocess.run([*make, "PLATFORMS=", f"LAYER_PYTHON={sys.executable}"], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the layer's Makefile failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    trees = {"hash": built / "python", "none": tmp / "none", "timestamp": tmp / "timestamp"}
    shutil.copytree(trees["hash"], trees["none"], ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(trees["none"], trees["timestamp"])
    mode = py_compile.PycInvalidationMode.TIMESTAMP
    compileall.compile_dir(trees["timestamp"], quiet=1, workers=0, invalidation_mode=mode)
    from tests.support import date_as_sam_zips

    for tree in trees.values():
        date_as_sam_zips(tree)
    probe = "import botocore, pydantic, runcreds; print(botocore.__file__, pydantic.__file__, runcreds.__file__)"
    for tree in trees.values():  # the trees' packages, not the virtualenv's, are what a trial imports
        where = subprocess.run([sys.executable, "-B", "-c", probe], env={**os.environ, "PYTHONPATH": str(tree)},
                               check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
        if not all(path.startswith(str(tree)) for path in where):
            raise RuntimeError(f"{tree}: imported {where}")
    return trees


def handler_trial(
    stack: Any, case: Case, token: str, profile: str | None, layer: Path | None = None
) -> tuple[float, list[tuple[str, str]]]:
    """One cold start of the handler; with `layer`, that tree as /opt/python and no bytecode written."""
    spec = stack.template.functions()[case.function]
    mark = stack.aws.calls.mark()
    # The reply goes to a file, not a pipe: a large one (an audit page) would fill a pipe nobody reads yet.
    with tempfile.TemporaryFile("w+") as replies:
        fd = replies.fileno()
        request = json.dumps({"id": str(uuid.uuid4()), "event": case.event(token)}) + "\n"
        cmd = [sys.executable, "-m", "runcreds_dev.lambda_worker", str(fd), str(spec.code_uri), spec.handler]
        if profile:  # where the time goes (the profiler's overhead makes this trial's time no measurement)
            cmd[1:1] = ["-m", "cProfile", "-o", str(Path(profile, f"{case.function}-{token}.prof"))]
        env = stack.functions[case.function].environment
        if layer is not None:
            cmd[1:1], env = ["-B"], {**env, "PYTHONPATH": str(layer)}
        elapsed = run(cmd, env, request, (fd,))
        replies.seek(0)
        lines = replies.read().splitlines()
    reply = json.loads(lines[-1])
    if "error" in reply or not served(reply["result"]):
        raise RuntimeError(f"{case.name}: the handler failed: {reply}")
    return elapsed, stack.aws.calls.since(mark)


def served(result: Any) -> bool:
    """Whether the first event was served, not merely answered: an API's 2xx, a vend that vended, an SQS
    batch with no item failure (a broken handler answers too, and would time as well as a working one)."""
    if not isinstance(result, dict):
        return False
    if "statusCode" in result:
        return bool(result["statusCode"] < 300)
    if "batchItemFailures" in result:
        return not result["batchItemFailures"]
    return bool(result.get("ready"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--profile", help="a directory: cProfile every handler trial there (not a measurement)")
    parser.add_argument("--bytecode", action="store_true", help="the layer's bytecode on a read-only /opt")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench import audit as audit_bench
    from runcreds.logic.trust_policy import trust_policy_for
    from runcreds_cli.sigv4_client import ApiClient
    from runcreds_dev.stack import EmbeddedStack
    from tests.support import Tenant, attach, create_integration, create_role

    with EmbeddedStack(template_path=ROOT / "template.yaml", stack_name="runcreds-bench") as stack:
        account, name = "bench", "networking"
        role_arn = create_role(stack, trust_policy_for(stack.outputs["BrokerRoleArn"], account), "bench-role")
        api = ApiClient(stack.outputs["ApiUrl"], stack.session())
        tenant = Tenant(account, name, "01BENCH")
        integration_id = create_integration(api, tenant, role_arn)
        assert attach(api, tenant, integration_id).status == 200
        audit_account, audit_run, audit_role, audit_akid = audit_bench._vend(stack)

        def vend(run_id: str) -> None:
            stack.put_event("Run Phase Started", {"account": account, "stack": name, "run_id": run_id, "phase": "plan"})
            stack.router.drain()

        def nothing(_token: str) -> None:
            return None

        def vend_event(run_id: str) -> dict[str, Any]:
            return {
                "version": "0", "id": str(uuid.uuid4()), "detail-type": "Run Phase Started", "source": "runcreds.runs",
                "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"account": account, "stack": name, "run_id": run_id, "phase": "plan"},
            }  # fmt: skip

        refresh = "/accounts/{account}/stacks/{stack}/runs/{run_id}/phases/{phase}/refresh"
        cases = [
            Case("vend", "VendCredentialsFunction", nothing, vend_event, True),
            Case(
                "attach API (get integration)", "AttachApiFunction", nothing,
                lambda _t: api_event("GET", "/accounts/{account}/integrations/{integration_id}",
                                     {"account": account, "integration_id": integration_id}),
                False,
            ),
            Case(
                "audit indexer (100 events)", "AuditIndexerFunction", nothing,
                lambda _t: audit_bench._sqs_events(
                    audit_bench._records(audit_bench.BATCH, audit_run, audit_role, audit_akid))[0],
                False,
            ),
            Case(
                "audit API (run page)", "AuditApiFunction", nothing,
                lambda _t: api_event("GET", "/accounts/{account}/runs/{run_id}/audit",
                                     {"account": audit_account, "run_id": audit_run}),
                False,
            ),
            Case(
                "refresh route", "AttachApiFunction", vend,
                lambda run_id: api_event("POST", refresh, {"account": account, "stack": name, "run_id": run_id,
                                                           "phase": "plan"}, {"integration_id": integration_id}),
                True,
            ),
        ]  # fmt: skip
        if args.only:
            wanted = set(args.only.split(","))
            cases = [c for c in cases if c.name.split(" ")[0] in wanted or c.name in wanted]
        # The audit indexer's first batch must find the run's sessions indexed already (as in production).
        stack.router.drain()

        with tempfile.TemporaryDirectory() as tmp:
            if args.bytecode:
                results = bytecode(stack, cases, layer_trees(Path(tmp)), args.trials)
            else:
                results = [against_raw(stack, case, Path(tmp), args.trials, args.profile) for case in cases]
        print(f"trials: {args.trials} per side per function (after 1 warm-up), interleaved; python "
              f"{sys.version.split()[0]}, {os.cpu_count()} cores")  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def against_raw(stack: Any, case: Case, tmp: Path, trials: int, profile: str | None) -> dict[str, Any]:
    """Per case: the handler's cold start ÷ its raw side's (and the floor's), from a recording of its calls."""
    from bench.results import record as results_record

    env = stack.functions[case.function].environment
    spec = stack.template.functions()[case.function]
    # Recording: one run of the handler, its calls written down (not timed).
    record_token = f"rec{uuid.uuid4().hex[:10]}"
    case.prepare(record_token)
    event_path, calls_path = Path(tmp, f"{case.function}.event"), Path(tmp, f"{case.name}.calls")
    event_path.write_text(json.dumps(case.event(record_token)))
    mark = stack.aws.calls.mark()
    child = [sys.executable, str(ROOT / "bench/cold_child.py")]
    run([*child, "record", str(spec.code_uri), spec.handler, str(event_path), str(calls_path)], env)
    recorded = stack.aws.calls.since(mark)
    if not recorded or not served(json.loads(calls_path.read_text())["result"]):
        raise RuntimeError(f"{case.name}: the recording served nothing ({len(recorded)} requests)")
    handler_times: list[float] = []
    raw_times: list[float] = []
    floor_times: list[float] = []
    sides = ("h", "r", "f")
    for trial in range(trials + 1):  # the first round warms the server's code paths
        tokens = {side: f"c{trial}{side}{uuid.uuid4().hex[:8]}" for side in sides}
        for token in tokens.values():
            case.prepare(token)
        for side in sides[trial % 3 :] + sides[: trial % 3]:  # each side first in turn
            old = record_token if case.tokenised else "@@no-token@@"
            if side == "h":
                elapsed, calls = handler_trial(stack, case, tokens["h"], profile)
                target = handler_times
            else:
                mark = stack.aws.calls.mark()
                mode = ["raw"] if side == "r" else ["floor", str(event_path)]
                elapsed = run([*child, *mode, str(calls_path), old, tokens[side]], env)
                calls = stack.aws.calls.since(mark)
                target = raw_times if side == "r" else floor_times
            if sorted(calls) != sorted(recorded):
                raise RuntimeError(f"{case.name}: {side} made {calls}, the recording {recorded}")
            if trial:
                target.append(elapsed)
    ratios = sorted(h / r for h, r in zip(handler_times, raw_times, strict=True))
    floors = sorted(f / r for f, r in zip(floor_times, raw_times, strict=True))
    # Under --profile the handler's times are the profiler's: printed, never a measurement.
    verdict = None if profile else statistics.median(ratios) <= GOAL
    results_record(f"cold start: {case.name}", ratios, f"<= {GOAL}", verdict)
    results_record(f"cold start: {case.name}, floor ÷ raw (reference)", floors, "", None)
    row = {
        "name": f"cold start: {case.name}",
        "handler_ms": statistics.median(handler_times) * 1000,
        "raw_ms": statistics.median(raw_times) * 1000,
        "floor_ms": statistics.median(floor_times) * 1000,
        "ratio": statistics.median(ratios),
        "min": ratios[0],
        "max": ratios[-1],
        "floor_ratio": statistics.median(floors),
        "goal": f"<= {GOAL}",
        "pass": verdict,
        "requests": len(recorded),
    }
    print(
        f"{row['name']:<40} handler {row['handler_ms']:7.0f} ms  raw {row['raw_ms']:7.0f} ms  "
        f"ratio {row['ratio']:.2f} (min {row['min']:.2f}, max {row['max']:.2f})  goal <= {GOAL}  "
        f"floor {row['floor_ms']:7.0f} ms ({row['floor_ratio']:.2f})  "
        f"[{len(recorded)} AWS requests each side]"
        f"{'  (profiled: not a measurement)' if profile else ''}",
        flush=True,
    )
    return row


def bytecode(stack: Any, cases: list[Case], trees: dict[str, Path], trials: int) -> list[dict[str, Any]]:
    """--bytecode: per case, the handler's cold start with each tree as its layer, interleaved."""
    from bench.results import record as results_record

    results = []
    for case in cases:
        times: dict[str, list[float]] = {side: [] for side in LAYERS}
        first: list[tuple[str, str]] | None = None  # the requests of the case's first trial
        sides = list(LAYERS)
        for trial in range(trials + 1):  # the first round warms the server's code paths
            for side in sides[trial % 3 :] + sides[: trial % 3]:
                token = f"b{trial}{side[0]}{uuid.uuid4().hex[:8]}"
                case.prepare(token)
                elapsed, calls = handler_trial(stack, case, token, None, trees[side])
                first = calls if first is None else first
                if sorted(calls) != sorted(first):  # every layer serves it alike
                    raise RuntimeError(f"{case.name}: {side} made {calls}, another layer {first}")
                if trial:
                    times[side].append(elapsed)
        row: dict[str, Any] = {"name": f"cold start as deployed: {case.name}"}
        for side in ("timestamp", "hash"):
            ratios = sorted(t / n for t, n in zip(times[side], times["none"], strict=True))
            results_record(f"cold start as deployed: {case.name}, {LAYERS[side]} ÷ none (reference)", ratios, "", None)
            row[side] = statistics.median(ratios)
        row.update({f"{side}_ms": statistics.median(times[side]) * 1000 for side in LAYERS})
        results.append(row)
        print(
            f"{row['name']:<50} no bytecode {row['none_ms']:6.0f} ms  timestamp {row['timestamp_ms']:6.0f} ms "
            f"({row['timestamp']:.2f})  hash {row['hash_ms']:6.0f} ms ({row['hash']:.2f})",
            flush=True,
        )
    return results


if __name__ == "__main__":
    sys.exit(main())
