"""What a cold start does not import: each is most of a function's init when it comes back unnoticed
(docs/PERFORMANCE.md, cold start). Each function's handler module is imported as Lambda imports it (its
CodeUri directory on the path), and the worker's command line as its console script does, in a fresh
interpreter each."""

from __future__ import annotations

import subprocess
import sys

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.support import ROOT

# boto3: clients come from botocore (runcreds.aws); boto3's own import brings s3transfer and its resources.
# Powertools' event handler: the API functions route with runcreds.routes.router. Its parser: the event
# models' envelope is runcreds.models.eventbridge.
NOT_IMPORTED = ("boto3", "s3transfer", "aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.parser")
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
HANDLERS = {
    name: (resource["Properties"]["CodeUri"], resource["Properties"]["Handler"].rsplit(".", 1)[0])
    for name, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}


def imported_after(module: str, directory: str) -> set[str]:
    code = f"import sys; import {module}; print('\\n'.join(sys.modules))"
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", code], cwd=ROOT / directory, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_no_function_imports_what_its_cold_start_does_without(function: str) -> None:
    directory, module = HANDLERS[function]
    modules = imported_after(module, directory)
    assert module in modules  # the control: the handler itself was imported
    assert {m for m in modules if m.startswith(NOT_IMPORTED)} == set()


def test_the_worker_command_line_imports_no_boto3() -> None:
    modules = imported_after("runcreds_cli.main", ".")
    assert "runcreds_cli.worker" in modules
    assert {m for m in modules if m.startswith(NOT_IMPORTED)} == set()


def test_the_audit_indexer_builds_none_of_the_attach_functions_entities() -> None:
    # Integrations, attachments, credential records and their role specs: the vend's and the attach API's
    # models. A session mapping is an integration's run phase (runcreds.models.run), not one of them.
    directory, module = HANDLERS["AuditIndexerFunction"]
    modules = imported_after(module, directory)
    assert "runcreds.models.audit" in modules
    assert {"runcreds.models.entities", "runcreds.run_scope"} & modules == set()


def test_every_model_is_built_when_its_module_is_imported() -> None:
    # Not on first use (pydantic's defer_build): pydantic 2.13 does not make a deferred build thread-safe,
    # and a model first used by two threads at once can validate with its parent's validator — input the
    # model forbids accepted (docs/decision_log.md). runcreds validates in threads (worker serve, reverify).
    code = (
        "import importlib, pkgutil, runcreds\n"
        "from pydantic import BaseModel\n"
        "for info in pkgutil.walk_packages(runcreds.__path__, 'runcreds.'):\n"
        "    importlib.import_module(info.name)\n"
        "def subclasses(cls):\n"
        "    for sub in cls.__subclasses__():\n"
        "        yield sub\n"
        "        yield from subclasses(sub)\n"
        "ours = {m for m in subclasses(BaseModel) if m.__module__.startswith('runcreds.')}\n"
        "print(len(ours), sorted(m.__qualname__ for m in ours if not m.__pydantic_complete__))\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    count, deferred = done.stdout.split(" ", 1)
    assert int(count) > 30, done.stdout  # the control: runcreds' models were found
    assert deferred.strip() == "[]", deferred
