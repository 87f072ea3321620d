"""Vend benchmark: the vend handler's wall time per event ÷ the seven AWS calls a vend cannot avoid, made
raw with boto3 against the same embedded AWS in the same run, and the AWS requests per vend.

Seven: Query (attachments), the claim (a transaction: the record and a check that the phase is still
open), AssumeRole, Encrypt, the completion (a transaction: the record and its audit session mappings),
PutEvents, and an UpdateItem marking the record announced — it is written unannounced so that a retry of
an invocation that failed after writing still sends its Ready event (docs/decision_log.md).

    .venv/bin/python bench/vend.py [--events 200]

Both sides run in this process against one moto server (strict STS in front), interleaved round by
round so that drift in the server affects both alike. The handler is the deployed one
(functions/vend_credentials, Powertools decorators included), called with its template environment and
its execution role's credentials; its logger runs at WARNING and its metrics print to a buffer, so
that the measurement is not of a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import record  # noqa: E402 - run as a script: the repository root is not on the path

GOAL = 1.15  # issue 13


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from runcreds.logic.trust_policy import trust_policy_for
    from runcreds_cli.sigv4_client import ApiClient
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

        # The handler, in this process, with the function's environment (and so its role's credentials).
        spec = stack.template.functions()["VendCredentialsFunction"]
        os.environ.update(stack.functions["VendCredentialsFunction"].environment)
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        module_spec = importlib.util.spec_from_file_location(spec.module, spec.code_uri / f"{spec.module}.py")
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        handler = getattr(module, spec.function_name)
        from runcreds_dev.lambda_worker import LocalContext

        context = LocalContext("bench", 30000, "bench")
        sink = io.StringIO()

        def handler_quietly(event: dict[str, Any]) -> dict[str, Any]:
            with contextlib.redirect_stdout(sink):  # the metrics' EMF line still gets built and printed
                result: dict[str, Any] = handler(event, context)
            sink.seek(0)
            sink.truncate()
            return result

        # The raw side: the same seven calls, with boto3, as the same identities.
        env = stack.functions["VendCredentialsFunction"].environment
        endpoint = stack.endpoint_url
        function_session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
            region_name="us-east-1",
        )
        raw_ddb = function_session.client("dynamodb", endpoint_url=endpoint)
        raw_kms = function_session.client("kms", endpoint_url=endpoint)
        raw_events = function_session.client("events", endpoint_url=endpoint)
        broker_creds = function_session.client("sts", endpoint_url=endpoint).assume_role(
            RoleArn=broker, RoleSessionName="bench-raw"
        )["Credentials"]
        raw_sts = boto3.Session(
            aws_access_key_id=broker_creds["AccessKeyId"],
            aws_secret_access_key=broker_creds["SecretAccessKey"],
            aws_session_token=broker_creds["SessionToken"],
            region_name="us-east-1",
        ).client("sts", endpoint_url=endpoint)
        table, attachments = env["RUNCREDS_CREDENTIALS_TABLE"], env["RUNCREDS_ATTACHMENTS_TABLE"]
        sessions = env["RUNCREDS_AUDIT_SESSIONS_TABLE"]

        def raw_vend(run_id: str) -> None:
            raw_ddb.query(
                TableName=attachments,
                KeyConditionExpression="stack_key = :k",
                ExpressionAttributeValues={":k": {"S": f"{account}#{name}"}},
                ConsistentRead=True,
            )
            key = {"run_key": {"S": f"{account}#{name}#{run_id}#plan"}, "integration_id": {"S": integration_id}}
            # The claim: the record, conditional on the phase still being open (its phase item), in one
            # transaction (docs/decision_log.md: a Started after its Finished must not vend).
            phase_key = {"run_key": key["run_key"], "integration_id": {"S": "#phase"}}
            raw_ddb.transact_write_items(
                TransactItems=[
                    {"ConditionCheck": {"TableName": table, "Key": phase_key,
                                        "ConditionExpression": "attribute_not_exists(#s) OR #s <> :f",
                                        "ExpressionAttributeNames": {"#s": "status"},
                                        "ExpressionAttributeValues": {":f": {"S": "finished"}}}},
                    {"Put": {"TableName": table, "Item": {**key, "status": {"S": "pending"}, "claim_token": {"S": "t"}},
                             "ConditionExpression": "attribute_not_exists(run_key)"}},
                ]
            )  # fmt: skip
            creds = raw_sts.assume_role(
                RoleArn=role_arn,
                RoleSessionName=run_id,
                ExternalId=f"{account}@{integration_id}@{name}@read",
                DurationSeconds=3600,
                SourceIdentity=run_id,
                Tags=[{"Key": "runcreds:run", "Value": run_id}],
                TransitiveTagKeys=["runcreds:run"],
            )["Credentials"]
            blob = raw_kms.encrypt(
                KeyId=env["RUNCREDS_CREDENTIALS_KEY_ARN"],
                Plaintext=json.dumps({k: str(v) for k, v in creds.items()}).encode(),
                EncryptionContext={"runcreds:run": run_id},
            )["CiphertextBlob"]
            # The record and its audit session mappings, in one request (docs/audit.md).
            mapping = {"scope": {"S": f"{account}#{name}#{run_id}#plan#{integration_id}"}, "run_id": {"S": run_id}}
            items: list[Any] = [
                {
                    "Put": {
                        "TableName": table,
                        "Item": {**key, "status": {"S": "ready"}, "ciphertext": {"B": blob}},
                        "ConditionExpression": "claim_token = :t",
                        "ExpressionAttributeValues": {":t": {"S": "t"}},
                    }
                },
                *(
                    {"Put": {"TableName": sessions, "Item": {"session_key": {"S": k}, **mapping}}}
                    for k in (f"akid#{creds['AccessKeyId']}", f"role#x#role#{run_id}", f"si#{run_id}")
                ),
            ]
            raw_ddb.transact_write_items(TransactItems=items)
            raw_events.put_events(
                Entries=[{"Source": "runcreds.broker", "DetailType": "Run Phase Credentials Ready",
                          "Detail": json.dumps({"run_id": run_id}), "EventBusName": env["RUNCREDS_EVENT_BUS_NAME"]}]
            )  # fmt: skip
            # The record is written unannounced until its Ready event is out (a retry announces it otherwise).
            raw_ddb.update_item(
                TableName=table, Key=key, UpdateExpression="REMOVE unannounced",
                ConditionExpression="attribute_exists(run_key)",
            )  # fmt: skip

        def event(run_id: str) -> dict[str, Any]:
            return {
                "version": "0", "id": str(uuid.uuid4()), "detail-type": "Run Phase Started", "source": "runcreds.runs",
                "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"account": account, "stack": name, "run_id": run_id, "phase": "plan"},
            }  # fmt: skip

        # Warm both sides (clients, the cached broker session, moto's code paths).
        for i in range(5):
            handler_quietly(event(f"warm-{i}"))
            raw_vend(f"warm-raw-{i}")

        handler_times, raw_times, requests = [], [], []
        for i in range(args.events):
            mark = stack.aws.calls.mark()
            started = time.perf_counter()
            result = handler_quietly(event(f"run-{i}"))
            handler_times.append(time.perf_counter() - started)
            requests.append(stack.aws.calls.since(mark))
            assert result.get("ready"), result
            started = time.perf_counter()
            raw_vend(f"raw-{i}")
            raw_times.append(time.perf_counter() - started)

        per_vend = {len(r) for r in requests}
        kinds = sorted({f"{s}:{a}" for r in requests for s, a in r})
        handler_ms, raw_ms = statistics.median(handler_times) * 1000, statistics.median(raw_times) * 1000
        print(f"events: {args.events} (after 5 warm-up), python {sys.version.split()[0]}")
        print(f"vend handler, median wall time per event: {handler_ms:.2f} ms")
        print(f"raw seven calls (boto3, same server), median: {raw_ms:.2f} ms")
        ratios = [h / r for h, r in zip(handler_times, raw_times, strict=True)]
        print(f"ratio handler / raw: {handler_ms / raw_ms:.3f}  (paired: median {statistics.median(ratios):.3f}, "
              f"min {min(ratios):.3f}, max {max(ratios):.3f}; goal <= {GOAL})")  # fmt: skip
        print(f"AWS requests per vend: {sorted(per_vend)}  (goal: 7) -> {', '.join(kinds)}")
        record("vend, warm: handler / raw calls", ratios, f"<= {GOAL}", statistics.median(ratios) <= GOAL)
        record("vend: AWS requests per vend", [len(r) for r in requests], "= 7", per_vend == {7})
    return 0


if __name__ == "__main__":
    sys.exit(main())
