"""What `sam build` produced (make test builds before it tests): the layer under python/, as Lambda
expects, with the runcreds package and arm64 binaries; each function with its handler module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runcreds_dev.template import Template
from tests.support import ROOT

BUILD = ROOT / ".aws-sam" / "build"
FOREIGN_IMPORT = re.compile(r"^\s*(from|import)\s+(runcreds_cli|runcreds_dev|moto)\b", re.MULTILINE)
pytestmark = pytest.mark.skipif(not BUILD.is_dir(), reason="run `make build` first (make test does)")


def test_the_layer_holds_the_package_and_its_pinned_dependencies() -> None:
    python = BUILD / "RuncredsLayer" / "python"
    assert (python / "runcreds" / "logic" / "vend.py").is_file()
    assert (python / "aws_lambda_powertools").is_dir()
    assert list(python.glob("pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so"))


def test_each_function_has_its_handler_module() -> None:
    for logical_id, function in Template(ROOT / "template.yaml").of_type("AWS::Serverless::Function").items():
        module = function["Properties"]["Handler"].rsplit(".", 1)[0]
        assert (BUILD / logical_id / f"{module}.py").is_file(), logical_id
        assert not (BUILD / logical_id / "runcreds").exists()  # the package comes from the layer only


def test_the_built_template_points_at_the_artifacts() -> None:
    text = (BUILD / "template.yaml").read_text()
    assert "CodeUri: VendCredentialsFunction" in text
    assert Path(BUILD / "RuncredsLayer").is_dir()


def test_the_layer_ships_the_server_package_and_nothing_else() -> None:
    python = BUILD / "RuncredsLayer" / "python"
    ours = {path.name for path in python.iterdir() if path.name.startswith("runcreds")}
    assert ours == {"runcreds"}, ours  # no command line (runcreds_cli), no development kit (runcreds_dev)
    modules = {path.relative_to(python / "runcreds").as_posix() for path in (python / "runcreds").rglob("*.py")}
    source = ROOT / "layers" / "runcreds" / "runcreds"
    assert modules == {path.relative_to(source).as_posix() for path in source.rglob("*.py")}
    # and none of it is, or leans on, the command line or the embedded stack
    leaning = [m for m in modules if FOREIGN_IMPORT.search((python / "runcreds" / m).read_text())]
    assert not leaning, leaning
    assert not (python / "moto").exists()
    assert not (python / "samtranslator").exists()
