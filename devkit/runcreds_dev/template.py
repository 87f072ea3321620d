"""template.yaml as the local stack sees it: resources, intrinsics resolved, functions as declared.

The embedded stack is derived from the template every time; there is no second copy of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ACCOUNT_ID = "123456789012"
CUSTOMER_ACCOUNT_ID = "111122223333"  # the account local customer roles live in (EmbeddedStack.customer_client)
REGION = "us-east-1"
PARTITION = "aws"

_NO_VALUE = object()  # AWS::NoValue: the property or list item is left out
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


def find_template(start: Path | None = None) -> Path:
    """template.yaml of the checkout we run from (or RUNCREDS_TEMPLATE)."""
    import os

    if env := os.environ.get("RUNCREDS_TEMPLATE"):
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").is_file():
            return folder / "template.yaml"
    package_root = Path(__file__).resolve().parents[4]
    if (package_root / "template.yaml").is_file():
        return package_root / "template.yaml"
    raise FileNotFoundError("template.yaml not found: run from the runcreds checkout or set RUNCREDS_TEMPLATE")


@dataclass
class EventRule:
    name: str
    event_bus_name: str
    pattern: dict[str, Any]


@dataclass
class SqsSource:
    """A function's SQS event source mapping, as the template declares it."""

    queue_arn: str
    batch_size: int = 10
    batching_window: int = 0
    report_batch_item_failures: bool = False


@dataclass
class ApiRoute:
    path: str
    method: str
    public: bool = False  # `Auth: {Authorizer: NONE}`: API Gateway lets anyone in, unsigned


@dataclass
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    role_logical_id: str | None
    environment: dict[str, str]
    timeout: int
    rules: list[EventRule] = field(default_factory=list)
    routes: list[ApiRoute] = field(default_factory=list)
    sqs_sources: list[SqsSource] = field(default_factory=list)
    max_retry_attempts: int = 2
    on_failure_queue_arn: str | None = None
    layer_dirs: list[Path] = field(default_factory=list)

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def function_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


class Template:
    def __init__(self, path: Path, stack_name: str = "runcreds-local") -> None:
        self.path = path
        self.root = path.parent
        self.stack_name = stack_name
        self.body: dict[str, Any] = yaml_parse(path.read_text())
        self.resources: dict[str, dict[str, Any]] = self.body["Resources"]
        self.parameters = {name: str(spec.get("Default", "")) for name, spec in self.body.get("Parameters", {}).items()}
        self._lists = {n for n, spec in self.body.get("Parameters", {}).items() if spec["Type"] == "CommaDelimitedList"}
        # Set by the provisioner: how a logical ID's Ref and GetAtt resolve (physical names, ARNs).
        self.ref_hook: Callable[[str], str] | None = None
        self.getatt_hook: Callable[[str, str], str] | None = None

    # ------------------------------------------------------------------ intrinsics
    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def ref(self, name: str) -> Any:
        if (value := self.pseudo(name)) is not None:
            return value
        if name in self._lists:
            return self.parameters[name].split(",")
        if name in self.parameters:
            return self.parameters[name]
        if self.ref_hook is None:
            raise KeyError(name)
        return self.ref_hook(name)

    def getatt(self, logical_id: str, attribute: str) -> str:
        if self.getatt_hook is None:
            raise KeyError(logical_id)
        return self.getatt_hook(logical_id, attribute)

    def condition(self, name: str) -> bool:
        """A condition of the template's Conditions section, as the parameters decide it."""
        return self._holds(self.body.get("Conditions", {})[name])

    def _holds(self, node: Any) -> bool:
        ((key, value),) = node.items()
        if key == "Condition":
            return self.condition(value)
        if key == "Fn::Equals":
            left, right = self.resolve(value)
            return bool(left == right)
        if key == "Fn::Not":
            return not self._holds(value[0])
        if key == "Fn::Or":
            return any(self._holds(v) for v in value)
        if key == "Fn::And":
            return all(self._holds(v) for v in value)
        raise KeyError(f"condition function {key} is not modelled")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [r for r in (self.resolve(v) for v in node) if r is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref" and value == "AWS::NoValue":
                return _NO_VALUE
            if key == "Fn::If":
                name, when_true, when_false = value
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                logical_id, attribute = value if isinstance(value, list) else value.split(".", 1)
                return self.getatt(logical_id, attribute)
            if key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                # `${!Literal}` is Sub's escape for a literal `${Literal}` (IAM policy variables).
                return _SUB.sub(lambda m: self._sub_var(m.group(1), variables), text).replace("${!", "${")
            if key == "Fn::Join":
                separator, parts = value
                return separator.join(str(p) for p in self.resolve(parts))
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in node.items()) if r is not _NO_VALUE}

    def _sub_var(self, name: str, variables: dict[str, Any]) -> str:
        if name in variables:
            return str(self.resolve(variables[name]))
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return self.getatt(logical_id, attribute)
        return str(self.ref(name))

    # ------------------------------------------------------------------ functions
    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def functions(self) -> dict[str, FunctionSpec]:
        globals_ = self.body.get("Globals", {}).get("Function", {})
        specs = {}
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            env = {
                **globals_.get("Environment", {}).get("Variables", {}),
                **props.get("Environment", {}).get("Variables", {}),
            }
            role = props.get("Role")
            invoke = props.get("EventInvokeConfig", {})
            on_failure = invoke.get("DestinationConfig", {}).get("OnFailure", {})
            spec = FunctionSpec(
                logical_id=logical_id,
                code_uri=self.root / props["CodeUri"],
                handler=props["Handler"],
                role_logical_id=role["Fn::GetAtt"][0] if isinstance(role, dict) else None,
                environment={k: str(v) for k, v in self.resolve(env).items()},
                timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
                max_retry_attempts=int(self.resolve(invoke.get("MaximumRetryAttempts", 2))),
                on_failure_queue_arn=self.resolve(on_failure["Destination"]) if on_failure else None,
                layer_dirs=self._layer_dirs([*globals_.get("Layers", []), *props.get("Layers", [])]),
            )
            for event_id, event in props.get("Events", {}).items():
                event_props = event.get("Properties", {})
                if event["Type"] == "EventBridgeRule":
                    bus = self.resolve(event_props.get("EventBusName", "default"))
                    spec.rules.append(EventRule(f"{logical_id}{event_id}", bus, event_props["Pattern"]))
                elif event["Type"] == "Api":
                    authorizer = event_props.get("Auth", {}).get("Authorizer")
                    spec.routes.append(
                        ApiRoute(event_props["Path"], event_props["Method"].upper(), public=authorizer == "NONE")
                    )
                elif event["Type"] == "SQS":
                    spec.sqs_sources.append(
                        SqsSource(
                            queue_arn=str(self.resolve(event_props["Queue"])),
                            batch_size=int(event_props.get("BatchSize", 10)),
                            batching_window=int(event_props.get("MaximumBatchingWindowInSeconds", 0)),
                            report_batch_item_failures="ReportBatchItemFailures"
                            in event_props.get("FunctionResponseTypes", []),
                        )
                    )
            specs[logical_id] = spec
        return specs

    def _layer_dirs(self, layers: list[Any]) -> list[Path]:
        dirs = []
        for layer in layers:
            logical_id = layer.get("Ref") if isinstance(layer, dict) else None
            resource = self.resources.get(logical_id or "", {})
            if resource.get("Type") == "AWS::Serverless::LayerVersion":
                dirs.append(self.root / resource["Properties"]["ContentUri"])
        return dirs

    def api_throttle(self) -> tuple[float, int] | None:
        """The REST API stage's throttle (its MethodSettings for every path and method): requests a
        second and the burst, as the parameters resolve them; None without one."""
        for resource in self.resources.values():
            if resource["Type"] != "AWS::Serverless::Api":
                continue
            for setting in resource["Properties"].get("MethodSettings", []):
                if (setting.get("ResourcePath"), setting.get("HttpMethod")) == ("/*", "*"):
                    rate = float(self.resolve(setting["ThrottlingRateLimit"]))
                    return rate, int(self.resolve(setting["ThrottlingBurstLimit"]))
        return None

    def outputs(self) -> dict[str, str]:
        return {name: str(self.resolve(o["Value"])) for name, o in self.body.get("Outputs", {}).items()}
