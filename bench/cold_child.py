"""The raw side of bench/cold_start.py, and its recorder: run in a fresh process with a function's environment.

    python bench/cold_child.py record CODE_URI MODULE.FUNCTION EVENT.json CALLS.json
    python bench/cold_child.py record-cli CALLS.json RUNCREDS_ARGS...
    python bench/cold_child.py record-warm CODE_URI MODULE.FUNCTION EVENTS.json CALLS.json
    python bench/cold_child.py raw CALLS.json OLD_TOKEN NEW_TOKEN
    python bench/cold_child.py warm CALLS.json SETUP_TOKEN OLD_TOKEN TOKENS.txt   (a line on stdin a round)
    python bench/cold_child.py floor EVENT.json CALLS.json OLD_TOKEN NEW_TOKEN

`record` imports the handler and serves one event, writing down every AWS call it made (service, operation,
parameters, region, which credentials signed it, and the keys an AssumeRole returned) — the handler's own
code is not touched: botocore's event hooks on every client see the calls. `record-cli` does the same for
the `runcreds` command line (`runcreds_cli.main.main` with the arguments given; its output is discarded).
`record-warm` serves two events in one container and writes down the
first's calls (a cold container's setup: the broker's own hop among them) apart from the second's (a warm
event's). `raw` is a fresh process that imports boto3, creates the same clients (same configuration, same
identities) and makes those calls again, with OLD_TOKEN replaced by NEW_TOKEN in the parameters (a fresh
run ID, so that the writes are new ones); `warm` is the same kept running, round after round, for
bench/vend.py. `floor` is `raw` plus the least that the stack runcreds is
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


def _recording_handler(code_uri: str, handler: str) -> tuple[Any, list[dict[str, object]], Any]:
    """The handler imported as Lambda would (its CodeUri first on the path), every AWS call it makes from
    now on recorded, and a context to call it with."""
    import importlib
    import logging
    import os

    logging.basicConfig(level=os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING"), stream=sys.stdout)
    calls = _recorded_calls()
    sys.path.insert(0, code_uri)
    from runcreds_dev.lambda_worker import LocalContext

    module_name, function_name = handler.rsplit(".", 1)
    entry = getattr(importlib.import_module(module_name), function_name)
    return entry, calls, LocalContext(os.environ["AWS_LAMBDA_FUNCTION_NAME"], 30000, "record")


def record(code_uri: str, handler: str, event_path: str, calls_path: str) -> None:
    import json

    entry, calls, context = _recording_handler(code_uri, handler)
    with open(event_path) as f:
        event = json.load(f)
    result = entry(event, context)
    with open(calls_path, "w") as f:
        json.dump({"calls": calls, "result": result}, f, default=str)


def record_warm(code_uri: str, handler: str, events_path: str, calls_path: str) -> None:
    """Two events in one container: the calls of the first (a cold container's, its setup) and of the
    second (a warm one's) written down apart."""
    import json

    entry, calls, context = _recording_handler(code_uri, handler)
    with open(events_path) as f:
        first, second = json.load(f)
    entry(first, context)
    setup = list(calls)
    del calls[:]
    entry(second, context)
    with open(calls_path, "w") as f:
        json.dump({"setup": setup, "calls": calls}, f, default=str)


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


class Replayer:
    """Makes recorded calls again with boto3: clients made on first use and kept (a warm process keeps
    them, as a warm handler does), one per service, region and identity, with the handler's client
    configuration; an identity an AssumeRole returned becomes a session when a call is signed by it."""

    def __init__(self) -> None:
        import os

        import boto3
        from botocore.config import Config

        self.boto3 = boto3
        self.config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
        own = self.own = boto3.Session()
        self.sessions: dict[str | None, Any] = {os.environ["AWS_ACCESS_KEY_ID"]: own, None: own}
        self.returned: dict[str, dict[str, str]] = {}  # access key ID → the credentials an AssumeRole returned
        self.clients: dict[tuple[str, str | None, str | None], Any] = {}

    def _client(self, call: dict[str, Any]) -> Any:
        key = (call["service"], call["region"], call["akid"])
        client = self.clients.get(key)
        if client is None:
            from botocore import UNSIGNED
            from botocore.config import Config

            session = self.sessions.get(call["akid"])
            if session is None:
                creds = self.returned[call["akid"]]
                session = self.sessions[call["akid"]] = self.boto3.Session(
                    aws_access_key_id=creds["AccessKeyId"],
                    aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"],
                    region_name=self.own.region_name,
                )
            unsigned = call["akid"] is None
            cfg = self.config.merge(Config(signature_version=UNSIGNED)) if unsigned else self.config
            region = call["region"] or self.own.region_name
            client = self.clients[key] = session.client(call["service"], region_name=region, config=cfg)
        return client

    def replay(self, calls: list[dict[str, Any]]) -> None:
        """The calls, their parameters decoded already (`_decode`)."""
        for call in calls:
            client = self._client(call)
            try:
                response = client._make_api_call(call["operation"], call["params"])
            except client.exceptions.ClientError as error:
                if error.response["Error"]["Code"] != call["error"]:
                    raise
                continue
            if call.get("returns_akid"):  # its calls (if any) are signed with the recorded key ID
                self.returned[call["returns_akid"]] = response["Credentials"]


def _decode(value: object) -> object:
    import base64

    if isinstance(value, dict):
        if "__bytes__" in value:
            return base64.b64decode(value["__bytes__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _calls(calls_path: str, old: str, new: str) -> list[dict[str, Any]]:
    import json

    with open(calls_path) as f:
        calls: list[dict[str, Any]] = json.loads(f.read().replace(old, new))["calls"]
    return calls


def raw(calls_path: str, old: str, new: str) -> None:
    Replayer().replay(_decode(_calls(calls_path, old, new)))  # type: ignore[arg-type]


def warm(calls_path: str, setup_old: str, old: str, tokens_path: str) -> None:
    """A warm raw side. TOKENS holds one token a line: the first replaces SETUP_TOKEN in the recording's
    setup (the calls of a cold container's first event), each other one OLD_TOKEN in its warm event's calls
    — every round's calls decoded before the first round, so that a round times its requests only. One
    line on stdin starts the next round; one line on stdout says it is done."""
    import json

    with open(calls_path) as f:
        text = f.read()
    with open(tokens_path) as f:
        setup_token, *tokens = f.read().split()
    rounds = [_decode(json.loads(text.replace(setup_old, setup_token))["setup"])]
    rounds += [_decode(json.loads(text.replace(old, token))["calls"]) for token in tokens]
    replayer = Replayer()
    for calls, _line in zip(rounds, sys.stdin, strict=False):
        replayer.replay(calls)  # type: ignore[arg-type]
        sys.stdout.write("done\n")
        sys.stdout.flush()


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
    elif sys.argv[1] == "record-warm":
        record_warm(*sys.argv[2:6])
    elif sys.argv[1] == "warm":
        warm(*sys.argv[2:6])
    elif sys.argv[1] == "floor":
        floor(*sys.argv[2:6])
    else:
        raw(*sys.argv[2:5])
