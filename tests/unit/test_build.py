"""What `sam build` produced (make test builds before it tests): the layer under python/, as Lambda
expects, with the runcreds package and arm64 binaries; each function with its handler module."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runcreds_dev.template import Template
from tests.support import ROOT

BUILD = ROOT / ".aws-sam" / "build"
FOREIGN_IMPORT = re.compile(r"^\s*(from|import)\s+(runcreds_cli|runcreds_dev|moto)\b", re.MULTILINE)
PYTHON312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"  # importlib.util.MAGIC_NUMBER of CPython 3.12
ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z: the date SAM's zip gives every file
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


def _pyc_header(pyc: Path) -> tuple[bytes, int, bytes]:
    data = pyc.read_bytes()[:16]
    return data[:4], int.from_bytes(data[4:8], "little"), data[8:16]


def test_the_layer_ships_bytecode_lambda_uses_whatever_the_files_dates() -> None:
    """Every module of the layer has CPython 3.12 bytecode beside it, hash-based and unchecked: SAM's zip
    dates every file 1980-01-01, so a timestamp-based .pyc would never match its source and /opt is
    read-only — each cold start would compile every module it imports and throw the result away."""
    python = BUILD / "RuncredsLayer" / "python"
    sources = sorted(python.rglob("*.py"))
    assert len(sources) > 500, len(sources)  # botocore, pydantic, Powertools, runcreds...
    missing, wrong = [], []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not pyc.is_file():
            missing.append(source.relative_to(python).as_posix())
            continue
        magic, flags, digest = _pyc_header(pyc)
        # PEP 552: flags 0b01 = hash-based, source not checked; the hash is the source's own
        if (magic, flags, digest) != (PYTHON312_MAGIC, 0b01, importlib.util.source_hash(source.read_bytes())):
            wrong.append(source.relative_to(python).as_posix())
    assert not missing, missing[:10]
    assert not wrong, wrong[:10]
    assert not (python / "bin").exists()  # pip's console scripts: nothing on Lambda runs them


def test_an_import_from_the_built_layer_compiles_nothing(tmp_path: Path) -> None:
    """What Lambda does with the layer, on the part of it this machine can load (the arm64 binaries
    aside): botocore, urllib3 and Powertools' logger imported from a copy whose files are all dated
    1980-01-01, as SAM's zip dates them, without writing bytecode (/opt is read-only) — and no module
    of the layer is compiled."""
    python = BUILD / "RuncredsLayer" / "python"
    copy = tmp_path / "python"
    shutil.copytree(python, copy, ignore=shutil.ignore_patterns("*.so", "data"))  # botocore's models: not code
    for path in copy.rglob("*"):
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH))
    probe = (
        "import builtins, sys\n"
        "compiled = []\n"
        "real = builtins.compile\n"
        "def compile(source, filename, *args, **kwargs):\n"
        "    compiled.append(str(filename))\n"
        "    return real(source, filename, *args, **kwargs)\n"
        "builtins.compile = compile\n"
        f"sys.path.insert(0, {str(copy)!r})\n"
        "import botocore.session, botocore.client, urllib3, jmespath, dateutil.parser\n"
        "import aws_lambda_powertools.logging.logger\n"
        f"assert botocore.__file__.startswith({str(copy)!r}), botocore.__file__\n"
        f"print(len([f for f in compiled if f.startswith({str(copy)!r})]), len(sys.modules))\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-B", "-I", "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    compiled, modules = (int(n) for n in done.stdout.split())
    assert modules > 200 and compiled == 0, done.stdout
