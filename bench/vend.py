"""Vend benchmark, warm: the vend handler's time per event ÷ the same AWS requests made raw with boto3, each
side in a warm process of its own, and the AWS requests per vend (goal ≤ 1.15; seven requests).

Seven: Query (attachments), the claim (a transaction: the record and a check that the phase is still
open), AssumeRole, Encrypt, the completion (a transaction: the record and its audit session mappings),
PutEvents, and an UpdateItem marking the record announced — it is written unannounced so that a retry of
an invocation that failed after writing still sends its Ready event (docs/decision_log.md).

    .venv/bin/python bench/vend.py [--events 200]

The handler side is the embedded stack's Lambda container for VendCredentialsFunction
(`runcreds_dev.lambda_worker`: the deployed handler, Powertools decorators included, the function's
template environment — its role's credentials, the template's log level — its logs to /dev/null), kept
warm across events as Lambda keeps a container. The raw side is a warm process too (bench/cold_child.py
`warm`): boto3 clients made once, replaying the requests the handler made on a recording run — the same
operations and parameters (the same payloads: five session tags, the full record, its three session
mappings), the same identities and regions — with a fresh run ID a round. Neither runs in this process,
which holds the moto server both talk to: the server's work does not share an interpreter lock with
either side. Rounds alternate which side goes first; each side is timed from this process, from writing
its request to reading its answer; the server counts each side's requests, and they must match. Each
round's items are deleted after it (bench/baseline.py: moto's transactions slow down as tables grow).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.baseline import TableBaseline  # noqa: E402 - run as a script: the repository root is not on the path
from bench.results import record  # noqa: E402

GOAL = 1.15  # issue 13
WARM_UP = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()

    from runcreds.logic.trust_policy import trust_policy_for
    from runcreds_cli.sigv4_client import ApiClient
    from runcreds_dev.stack import EmbeddedStack
    from tests.support import Tenant, attach, create_integration, create_role

    with EmbeddedStack(template_path=ROOT / "template.yaml", stack_name="runcreds-bench") as stack:
        account, name = "bench", "networking"
        role_arn = create_role(stack, trust_policy_for(stack.outputs["BrokerRoleArn"], account), "bench-role")
        api = ApiClient(stack.outputs["ApiUrl"], stack.session())
        tenant = Tenant(account, name, "01BENCH")
        assert attach(api, tenant, create_integration(api, tenant, role_arn)).status == 200

        def event(run_id: str) -> dict[str, Any]:
            return {
                "version": "0", "id": str(uuid.uuid4()), "detail-type": "Run Phase Started", "source": "runcreds.runs",
                "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"account": account, "stack": name, "run_id": run_id, "phase": "plan"},
            }  # fmt: skip

        spec = stack.template.functions()["VendCredentialsFunction"]
        env = stack.functions["VendCredentialsFunction"].environment
        child = [sys.executable, str(ROOT / "bench/cold_child.py")]
        with tempfile.TemporaryDirectory() as tmp:
            # Recording (not timed): a cold container's first event, then a warm one's, apart.
            setup_token, warm_token = (f"rec{uuid.uuid4().hex[:10]}" for _ in range(2))
            events_path, calls_path = Path(tmp, "events.json"), Path(tmp, "vend.calls")
            events_path.write_text(json.dumps([event(setup_token), event(warm_token)]))
            subprocess.run([*child, "record-warm", str(spec.code_uri), spec.handler, str(events_path),
                            str(calls_path)], env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            tokens = [f"r{i}x{uuid.uuid4().hex[:8]}" for i in range(1 + WARM_UP + args.events)]
            tokens_path = Path(tmp, "tokens")
            tokens_path.write_text("\n".join(tokens))
            with (
                open(Path(tmp, "handler.err"), "w") as handler_err,
                open(Path(tmp, "raw.err"), "w") as raw_err,
            ):
                reply_read, reply_write = os.pipe()
                handler = subprocess.Popen(
                    [sys.executable, "-m", "runcreds_dev.lambda_worker", str(reply_write), str(spec.code_uri),
                     spec.handler],
                    env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=handler_err, text=True,
                    pass_fds=(reply_write,),
                )  # fmt: skip
                os.close(reply_write)
                replies = os.fdopen(reply_read)
                raw = subprocess.Popen(
                    [*child, "warm", str(calls_path), setup_token, warm_token, str(tokens_path)],
                    env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=raw_err, text=True,
                )  # fmt: skip
                try:
                    assert json.loads(replies.readline()) == {"ready": True}, "the handler's container did not start"
                    written = (env["RUNCREDS_CREDENTIALS_TABLE"], env["RUNCREDS_AUDIT_SESSIONS_TABLE"])
                    tables = TableBaseline(stack.client("dynamodb"), written)
                    return _rounds(stack, args.events, event, (handler, replies, raw, tmp), tables)
                finally:
                    for process in (handler, raw):
                        assert process.stdin is not None
                        process.stdin.close()
                        process.wait(timeout=30)


def _rounds(stack: Any, events: int, event: Any, sides: tuple[Any, IO[str], Any, str], tables: TableBaseline) -> int:
    handler, replies, raw, tmp = sides

    def handler_round(run_id: str) -> float:
        started = time.perf_counter()
        handler.stdin.write(json.dumps({"id": str(uuid.uuid4()), "event": event(run_id)}) + "\n")
        handler.stdin.flush()
        line = replies.readline()
        elapsed = time.perf_counter() - started
        reply: dict[str, Any] = json.loads(line) if line else {"error": Path(tmp, "handler.err").read_text()[-3000:]}
        result = reply.get("result")
        if not (isinstance(result, dict) and result.get("ready")):
            raise RuntimeError(f"the vend did not vend: {reply}")
        return elapsed

    def raw_round() -> float:
        started = time.perf_counter()
        raw.stdin.write("\n")
        raw.stdin.flush()
        line = raw.stdout.readline()
        elapsed = time.perf_counter() - started
        if line.strip() != "done":
            raise RuntimeError(f"the raw side failed: {Path(tmp, 'raw.err').read_text()[-3000:]}")
        return elapsed

    handler_round(f"h0x{uuid.uuid4().hex[:8]}")  # the container's first event (cold: the broker's own hop)
    raw_round()  # the recording's setup
    for i in range(WARM_UP):  # clients, connections, moto's code paths
        handler_round(f"h{i + 1}x{uuid.uuid4().hex[:8]}")
        raw_round()

    handler_times: list[float] = []
    raw_times: list[float] = []
    requests: list[list[tuple[str, str]]] = []
    for i in range(events):
        for side in ("handler", "raw") if i % 2 == 0 else ("raw", "handler"):
            mark = stack.aws.calls.mark()
            if side == "handler":
                handler_times.append(handler_round(f"v{i}x{uuid.uuid4().hex[:8]}"))
                requests.append(sorted(stack.aws.calls.since(mark)))
            else:
                raw_times.append(raw_round())
                made = sorted(stack.aws.calls.since(mark))
                if requests and made != requests[-1]:  # the handler's of this round, or of the one before
                    raise RuntimeError(f"the raw side made {made}, the handler {requests[-1]}")
        tables.restore()  # untimed: each round measures the same tables (bench/baseline.py)

    per_vend = {len(r) for r in requests}
    kinds = sorted({f"{s}:{a}" for r in requests for s, a in r})
    handler_ms, raw_ms = statistics.median(handler_times) * 1000, statistics.median(raw_times) * 1000
    ratios = [h / r for h, r in zip(handler_times, raw_times, strict=True)]
    print(f"events: {events} (after {WARM_UP} warm-up), each side a warm process of its own; python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cores")  # fmt: skip
    print(f"vend handler, median time per event: {handler_ms:.2f} ms")
    print(f"the same requests raw (boto3, warm), median: {raw_ms:.2f} ms")
    print(f"ratio handler / raw: paired median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, "
          f"max {max(ratios):.3f}; goal <= {GOAL})")  # fmt: skip
    print(f"AWS requests per vend: {sorted(per_vend)}  (goal: 7) -> {', '.join(kinds)}")
    record("vend, warm: handler / raw calls", ratios, f"<= {GOAL}", statistics.median(ratios) <= GOAL)
    record("vend: AWS requests per vend", [len(r) for r in requests], "= 7", per_vend == {7})
    return 0


if __name__ == "__main__":
    sys.exit(main())
