"""The embedded stack: moto + strict STS + the template's resources, functions, rules and API."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
from moto.iam.models import iam_backends

from runcreds_dev.api_gateway import LocalApiGateway, TokenBucket
from runcreds_dev.embedded_aws import EmbeddedAws, internal
from runcreds_dev.event_router import EventRouter
from runcreds_dev.lambda_runtime import LocalFunction
from runcreds_dev.provision import Provisioner
from runcreds_dev.sqs_poller import SqsPoller
from runcreds_dev.strict_sts import LOCAL_SERVICE_HEADER
from runcreds_dev.template import ACCOUNT_ID, CUSTOMER_ACCOUNT_ID, REGION, FunctionSpec, Template, find_template

LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LOCAL_ADMIN_USER = "moto"  # moto's identity for unknown keys (arn:aws:iam::123456789012:user/moto)
LOCAL_ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}],
}


class LogBook:
    """Every line the functions wrote, kept for tests and echoed (prefixed) when asked."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, function: str, line: str) -> None:
        with self._lock:
            self.lines.append((function, line))
        if self.echo:
            print(f"  [{function}] {line}", file=sys.stderr)

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)


class EmbeddedStack:
    def __init__(
        self,
        template_path: Path | None = None,
        port: int = 0,
        api_port: int = 0,
        echo_logs: bool = False,
        overrides: dict[str, str] | None = None,
        stack_name: str = "runcreds-local",
        parameters: dict[str, str] | None = None,
    ) -> None:
        self.template = Template(template_path or find_template(), stack_name)
        # As `sam deploy --parameter-overrides`: the template's parameters, resolved wherever they are used.
        unknown = set(parameters or {}) - set(self.template.parameters)
        if unknown:
            raise KeyError(f"template.yaml has no parameters {sorted(unknown)}")
        self.template.parameters.update(parameters or {})
        self.aws = EmbeddedAws(port)
        self.api = LocalApiGateway(api_port)
        self.logs = LogBook(echo_logs)
        self.overrides = overrides or {}
        self.functions: dict[str, LocalFunction] = {}
        self.outputs: dict[str, str] = {}
        self.router: EventRouter
        self.sqs_poller: SqsPoller

    # ------------------------------------------------------------------ life cycle
    def start(self) -> EmbeddedStack:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request is noise here
        self.aws.start()
        self.api.start()
        if not self.template.parameters.get("OidcIssuerUrl"):
            # The issuer is the embedded API itself (http on loopback, where AWS would demand https): the
            # strict STS fetches its discovery document and JWKS from there, as AWS STS does from ApiUrl.
            self.template.parameters["OidcIssuerUrl"] = self.api.url
        self.provisioner = Provisioner(self.template, self.client)
        self.provisioner.provision_all()
        self._create_local_admin()
        self.router = EventRouter(internal(self.client("sqs")))
        self.aws.front_door.on_put_events = self.router.on_put_events
        self.sqs_poller = SqsPoller(internal(self.client("sqs")))
        self._throttle_api()
        for logical_id, spec in self.template.functions().items():
            function = LocalFunction(spec, self._environment(spec), self.logs)
            self.functions[logical_id] = function
            for rule in spec.rules:
                self.router.add(rule, function)
            for route in spec.routes:
                self.api.add(route, function)
            for source in spec.sqs_sources:
                self.sqs_poller.add(source, function)
        self.sqs_poller.start()
        self.outputs = self.template.outputs()
        self.outputs["ApiUrl"] = self.api.url
        return self

    def update(self, parameters: dict[str, str]) -> None:
        """As `sam deploy --parameter-overrides` on the running stack: resources the new parameters deploy
        are created, those they no longer deploy retired (a KMS key is scheduled for deletion, as
        CloudFormation does), and functions whose environment changed start afresh with the new one."""
        unknown = set(parameters) - set(self.template.parameters)
        if unknown:
            raise KeyError(f"template.yaml has no parameters {sorted(unknown)}")
        self.template.parameters.update(parameters)
        self.provisioner.retire_undeployed()
        self.provisioner.provision_all()
        for logical_id, spec in self.template.functions().items():
            function = self.functions[logical_id]
            if spec.environment != function.spec.environment:
                function.stop()
                function.spec, function.environment = spec, self._environment(spec)
        self._throttle_api()
        self.outputs = {**self.template.outputs(), "ApiUrl": self.api.url}

    def _throttle_api(self) -> None:
        throttle = self.template.api_throttle()
        self.api.throttle = TokenBucket(*throttle) if throttle else None

    def stop(self) -> None:
        if hasattr(self, "sqs_poller"):
            self.sqs_poller.stop()
        for function in self.functions.values():
            function.stop()
        if hasattr(self, "router"):
            self.router.stop()
        self.api.stop()
        self.aws.stop()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _create_local_admin(self) -> None:
        """The principal of LOCAL_CREDENTIALS: moto's default identity (`user/moto`) made a real IAM user
        holding those keys and allowed to invoke the whole API, so the gateway verifies every request."""
        backend = iam_backends[ACCOUNT_ID]["global"]
        if backend.get_user_from_access_key_id(LOCAL_CREDENTIALS["aws_access_key_id"]) is not None:
            return  # another stack in this process (they share moto's backends) created it
        iam = internal(self.client("iam"))
        iam.create_user(UserName=LOCAL_ADMIN_USER)
        iam.put_user_policy(
            UserName=LOCAL_ADMIN_USER, PolicyName="invoke-api", PolicyDocument=json.dumps(LOCAL_ADMIN_POLICY)
        )
        key = backend.create_access_key(LOCAL_ADMIN_USER)
        # moto issues random keys; the local ones are fixed so that `make up`'s curl lines and AWS_* work.
        key.access_key_id = LOCAL_CREDENTIALS["aws_access_key_id"]
        key.secret_access_key = LOCAL_CREDENTIALS["aws_secret_access_key"]

    # ------------------------------------------------------------------ clients
    @property
    def endpoint_url(self) -> str:
        return self.aws.endpoint_url

    def session(
        self,
        aws_access_key_id: str = LOCAL_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key: str = LOCAL_CREDENTIALS["aws_secret_access_key"],
        aws_session_token: str | None = None,
    ) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            region_name=REGION,
        )

    def client(self, service: str, session: boto3.Session | None = None) -> Any:
        return (session or self.session()).client(  # type: ignore[call-overload]
            service, endpoint_url=self.endpoint_url, region_name=REGION
        )

    def customer_client(self, service: str) -> Any:
        """A client acting in the customer's AWS account (CUSTOMER_ACCOUNT_ID), where customer roles live:
        the broker never assumes roles of runcreds' own account."""
        client = self.client(service)

        def in_customer_account(request: Any, **_kwargs: Any) -> None:
            request.headers["x-moto-account-id"] = CUSTOMER_ACCOUNT_ID

        client.meta.events.register("before-send", in_customer_account)
        return client

    def client_env(self) -> dict[str, str]:
        """What a process needs to talk to the embedded AWS (the worker CLI, the aws CLI)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "RUNCREDS_CREDENTIALS_TABLE": self.outputs["CredentialsTableName"],
        }

    def put_event(
        self, detail_type: str, detail: dict[str, Any], source: str = "runcreds.runs", bus: str | None = None
    ) -> None:
        """PutEvents onto the run bus (the orchestrator's), or onto `bus`."""
        import json

        response = self.client("events").put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": bus or self.outputs["RunEventBusName"],
                }
            ]
        )
        if response["FailedEntryCount"]:
            raise RuntimeError(f"PutEvents failed: {response['Entries']}")

    def deliver_forwarded(self, event: dict[str, Any], account: str) -> None:
        """An event a customer account's forwarding rule put on the audit bus, as the audit rule hands it
        to AuditQueue: with that account in the envelope. moto's EventBridge stamps every event with the
        account it runs in, so cross-account forwarding is delivered here, the rest is moto's own."""
        import json
        import uuid

        detail = event["detail"]
        envelope = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": event["detail-type"],
            "source": event["source"],
            "account": account,
            "time": detail.get("eventTime", ""),
            "region": detail.get("awsRegion", REGION),
            "resources": [],
            "detail": detail,
        }
        self.client("sqs").send_message(QueueUrl=self.outputs["AuditQueueUrl"], MessageBody=json.dumps(envelope))

    # ------------------------------------------------------------------ functions
    def _execution_credentials(self, role_arn: str, function_name: str) -> dict[str, str]:
        """Credentials of the function's role, assumed as lambda.amazonaws.com (the trust policy says)."""
        sts = self.client("sts")

        def as_lambda_service(request: Any, **_kwargs: Any) -> None:
            request.headers[LOCAL_SERVICE_HEADER] = "lambda.amazonaws.com"

        sts.meta.events.register("before-sign.sts.AssumeRole", as_lambda_service)
        credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=function_name[:64])["Credentials"]
        return {
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        }

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        function_name = f"{self.template.stack_name}-{spec.logical_id}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(str(d) for d in spec.layer_dirs),  # the layers, as /opt/python
            "PYTHONUNBUFFERED": "1",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_METRICS_DISABLED": "false",
        }
        if spec.role_logical_id:
            role_arn = self.template.getatt(spec.role_logical_id, "Arn")
            env.update(self._execution_credentials(role_arn, function_name))
        env.update(spec.environment)
        env.update(self.overrides)
        return env
