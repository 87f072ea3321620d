"""template.yaml: the outputs of docs/interface.md §5, thin handlers that exist, least-privilege roles, routes that
the API really serves, and a local stack that is built from it."""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest

from runcreds.routes.attach import app
from runcreds.settings import (
    AttachSettings,
    AuditApiSettings,
    AuditIndexerSettings,
    OidcIssuerSettings,
    ReverifySettings,
    VendSettings,
)
from runcreds_dev.template import Template
from tests.support import EVENTS, ROOT

TEMPLATE = Template(ROOT / "template.yaml")
INTERFACE_OUTPUTS = {
    "RunEventBusName",
    "ApiUrl",
    "CredentialsTableName",
    "CredentialsKeyArn",
    "WorkerReadPhasePolicyArn",
    "WorkerWritePhasePolicyArn",
    "BrokerRoleArn",
    "AuditEventBusArn",
    "AuditIndexTableName",
    "AuditQueueUrl",
    "AuditDeadLetterQueueUrl",
    "VendDeadLetterQueueUrl",
    "OidcIssuerUrl",
}


def functions() -> dict[str, dict[str, Any]]:
    return TEMPLATE.of_type("AWS::Serverless::Function")


def test_the_documented_outputs_exist() -> None:
    """Exactly the outputs docs/interface.md §5 lists: one more or one less is a change of the interface."""
    assert set(TEMPLATE.body["Outputs"]) == INTERFACE_OUTPUTS


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_each_handler_exists_under_a_unique_module_name(logical_id: str) -> None:
    props = functions()[logical_id]["Properties"]
    module, attribute = props["Handler"].rsplit(".", 1)
    path = ROOT / props["CodeUri"] / f"{module}.py"
    assert path.is_file()
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    assert callable(getattr(loaded, attribute))
    modules = [f["Properties"]["Handler"].rsplit(".", 1)[0] for f in functions().values()]
    assert modules.count(module) == 1


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("logical_id", sorted(TEMPLATE.of_type("AWS::IAM::Role")))
def test_roles_grant_named_actions_on_named_resources(logical_id: str) -> None:
    for statement in _statements(TEMPLATE.resources[logical_id]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), (logical_id, actions)
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "*" not in resources, logical_id


def test_only_the_broker_may_assume_customer_roles() -> None:
    may_assume_any_role = {
        logical_id
        for logical_id, role in TEMPLATE.of_type("AWS::IAM::Role").items()
        for statement in _statements(role)
        if "iam::*:role/*" in json.dumps(statement["Resource"])
    }
    assert may_assume_any_role == {"BrokerRole"}


def test_the_attach_api_routes_in_the_template_are_exactly_those_the_router_serves() -> None:
    events = functions()["AttachApiFunction"]["Properties"]["Events"].values()
    declared = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events if e["Type"] == "Api"}
    served = {(route.method.upper(), route.openapi_path) for route in app.routes}
    assert declared == served


@pytest.mark.parametrize("path", sorted(p.relative_to(EVENTS).as_posix() for p in EVENTS.rglob("*.json")))
def test_every_sample_event_is_json(path: str) -> None:
    assert json.loads((EVENTS / path).read_text())


def test_the_layer_is_built_for_the_lambda_runtime() -> None:
    (layer,) = TEMPLATE.of_type("AWS::Serverless::LayerVersion").values()
    # built by its own Makefile (the bytecode: tests/unit/test_build.py), for the runtime and architecture
    # the layer declares
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == [layer["Metadata"]["BuildArchitecture"]] == ["arm64"]
    makefile = (ROOT / layer["Properties"]["ContentUri"] / "Makefile").read_text()
    assert "--python-version 3.12" in makefile and "sys.version_info[:2] == (3, 12)" in makefile
    platforms = re.findall(r"--platform (\S+)", makefile)
    assert platforms and all(platform.endswith("_aarch64") for platform in platforms)
    requirements = (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").read_text()
    pyproject = (ROOT / layer["Properties"]["ContentUri"] / "pyproject.toml").read_text()
    for line in requirements.splitlines():
        if line and not line.startswith("#"):
            assert f'"{line}"' in pyproject, f"{line} differs between the layer and the server package"


@pytest.mark.parametrize(
    ("logical_id", "settings"),
    [
        ("VendCredentialsFunction", VendSettings),
        ("AttachApiFunction", AttachSettings),
        ("ReverifyAttachmentsFunction", ReverifySettings),
        ("AuditIndexerFunction", AuditIndexerSettings),
        ("AuditApiFunction", AuditApiSettings),
        ("OidcIssuerFunction", OidcIssuerSettings),
    ],
)
def test_each_function_is_given_exactly_the_runcreds_settings_it_reads(logical_id: str, settings: type[Any]) -> None:
    # Given the function's environment (Globals merged with its own) and the settings model its handler reads
    own = functions()[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    shared = TEMPLATE.body["Globals"]["Function"]["Environment"]["Variables"]
    given = {name for name in {**shared, **own} if name.startswith("RUNCREDS_")}
    read = {field.alias for field in settings.model_fields.values() if (field.alias or "").startswith("RUNCREDS_")}

    # Then it is given every setting it reads, and no other function's table, key or bus
    assert given == read
