"""The raw side of bench/cold_start.py, and its recorder: run in a fresh process with a function's environment.

    python bench/cold_child.py record CODE_URI MODULE.FUNCTION EVENT.json CALLS.json
    python bench/cold_child.py record-cli CALLS.json RUNCREDS_ARGS...
    python bench/cold_child.py raw CALLS.json OLD_TOKEN NEW_TOKEN
    python bench/cold_child.py floor EVENT.json CALLS.json OLD_TOKEN NEW_TOKEN

`record` imports the handler and serves one event, writing down every AWS call it made (service, operation,
parameters, region, which credentials signed it, and the keys an AssumeRole returned) — the handler's own
code is not touched: botocore's event hooks on every client see the calls. `record-cli` does the same for
the `runcreds` command line (`runcreds_cli.main.main` with the arguments given; its output is discarded).
`raw` is a fresh process that imports boto3, creates the same clients (same configuration, same
identities) and makes those calls again, with OLD_TOKEN replaced by NEW_TOKEN in the parameters (a fresh
run ID, so that the writes are new ones). `floor` is `raw` plus the least that the stack runcreds is
built on costs any handler: pydantic imported and one model validating the event, Powertools' Logger and
Metrics made, one line logged and one metric flushed — a reference for the cold-start table, not a goal.
"""

from __future__ import annotations

import sys
from typing import Any


def _encode(value: object) -> object:
    import base64
    from datetime import datetime

    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _recorded_calls() -> list[dict[str, object]]:
    """From now on, every AWS call of every botocore client made in this process, as it is sent."""
    import json

    import botocore.session

    calls: list[dict[str, object]] = []
    pending: list[dict[str, object]] = []  # params of calls not yet sent (AssumeRole nests inside signing)

    def provide(params: dict[str, object], model: object, **_: object) -> None:
        pending.append({"params": json.loads(json.dumps(_encode(params)))})

    def before_send(request: object, **_: object) -> None:
        call = pending.pop()
        auth = request.headers.get("Authorization", b"")  # type: ignore[attr-defined]
        auth = auth.decode() if isinstance(auth, bytes) else auth
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
        call["akid"] = scope[0] if scope else None
        call["region"] = scope[2] if scope else None
        calls.append(call)

    def after_call(model: object, parsed: dict[str, object], **_: object) -> None:
        call = calls[-1]
        call["service"] = model.service_model.service_name  # type: ignore[attr-defined]
        call["operation"] = model.name  # type: ignore[attr-defined]
        call["error"] = parsed.get("Error", {}).get("Code")  # type: ignore[attr-defined]
        creds = parsed.get("Credentials")
        if isinstance(creds, dict):
            call["returns_akid"] = creds["AccessKeyId"]

    create_client = botocore.session.Session.create_client

    def hooked(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("provide-client-params.*.*", provide)
        client.meta.events.register("before-send.*.*", before_send)
        client.meta.events.register("after-call.*.*", after_call)
        return client

    botocore.session.Session.create_client = hooked  # type: ignore[method-assign]
    return calls


def record(code_uri: str, handler: str, event_path: str, calls_path: str) -> None:
    import importlib
    import json
    import logging
    import os

    logging.basicConfig(level=os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING"), stream=sys.stdout)
    calls = _recorded_calls()
    sys.path.insert(0, code_uri)
    from runcreds_dev.lambda_worker import LocalContext

    module_name, function_name = handler.rsplit(".", 1)
    entry = getattr(importlib.import_module(module_name), function_name)
    with open(event_path) as f:
        event = json.load(f)
    result = entry(event, LocalContext(os.environ["AWS_LAMBDA_FUNCTION_NAME"], 30000, "record"))
    with open(calls_path, "w") as f:
        json.dump({"calls": calls, "result": result}, f, default=str)


def record_cli(calls_path: str, *argv: str) -> None:
    import contextlib
    import io
    import json

    calls = _recorded_calls()
    from runcreds_cli.main import main

    with contextlib.redirect_stdout(io.StringIO()):  # the credentials themselves: not kept anywhere
        status = main(list(argv))
    if status:
        raise SystemExit(f"runcreds {' '.join(argv[:2])} exited {status}")
    with open(calls_path, "w") as f:
        json.dump({"calls": calls}, f, default=str)


def raw(calls_path: str, old: str, new: str) -> None:
    import base64
    import json
    import os

    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    def decode(value: object) -> object:
        if isinstance(value, dict):
            if "__bytes__" in value:
                return base64.b64decode(value["__bytes__"])
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    with open(calls_path) as f:
        calls = json.loads(f.read().replace(old, new))["calls"]
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
    own = boto3.Session()
    sessions: dict[str | None, boto3.Session] = {os.environ["AWS_ACCESS_KEY_ID"]: own, None: own}
    clients: dict[tuple[str, str | None, str | None], object] = {}
    for call in calls:
        key = (call["service"], call["region"], call["akid"])
        client = clients.get(key)
        if client is None:
            unsigned = call["akid"] is None
            session = sessions[call["akid"]]
            region = call["region"] or own.region_name
            cfg = config.merge(Config(signature_version=UNSIGNED)) if unsigned else config
            client = clients[key] = session.client(call["service"], region_name=region, config=cfg)
        try:
            response = client._make_api_call(call["operation"], decode(call["params"]))  # type: ignore[attr-defined]
        except client.exceptions.ClientError as error:  # type: ignore[attr-defined]
            if error.response["Error"]["Code"] != call["error"]:
                raise
            continue
        if call.get("returns_akid"):
            creds = response["Credentials"]
            sessions[call["returns_akid"]] = boto3.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                region_name=own.region_name,
            )


def floor(event_path: str, calls_path: str, old: str, new: str) -> None:
    import json

    from aws_lambda_powertools import Logger, Metrics
    from pydantic import BaseModel, ConfigDict

    class Event(BaseModel):
        model_config = ConfigDict(extra="allow")

    logger, metrics = Logger(), Metrics()
    with open(event_path) as f:
        Event.model_validate(json.load(f))
    raw(calls_path, old, new)
    logger.info("served")
    metrics.add_metric(name="Served", unit="Count", value=1)
    metrics.flush_metrics()


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(*sys.argv[2:6])
    elif sys.argv[1] == "record-cli":
        record_cli(sys.argv[2], *sys.argv[3:])
    elif sys.argv[1] == "floor":
        floor(*sys.argv[2:6])
    else:
        raw(*sys.argv[2:5])
