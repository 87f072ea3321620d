"""What `sam build` produced (make test builds before it tests): the layer under python/, as Lambda
expects, with the runcreds package and arm64 binaries; each function with its handler module."""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from runcreds_dev.template import Template
from tests.support import ROOT, ZIP_EPOCH, date_as_sam_zips

BUILD = ROOT / ".aws-sam" / "build"
FOREIGN_IMPORT = re.compile(r"^\s*(from|import)\s+(runcreds_cli|runcreds_dev|moto)\b", re.MULTILINE)
PYTHON312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"  # importlib.util.MAGIC_NUMBER of CPython 3.12
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


# The Lambda runtime the layer is for, as requirement markers see it.
LAMBDA_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "aarch64", "os_name": "posix",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip


def test_the_layer_holds_every_distribution_its_requirements_need_whole() -> None:
    """Every pinned requirement and everything it requires on Lambda's runtime, at a version it accepts,
    each with every file its RECORD lists (pip's console scripts aside: the build leaves them out)."""
    python = BUILD / "RuncredsLayer" / "python"
    installed = {canonicalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(python)])}
    lines = (ROOT / "layers" / "runcreds" / "requirements.txt").read_text().splitlines()
    wanted = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert len(wanted) >= 4
    seen: set[tuple[str, frozenset[str]]] = set()
    missing = []
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        dist = installed.get(name)
        if dist is None or not requirement.specifier.contains(dist.version, prereleases=True):
            missing.append(f"{requirement} (found {dist.version if dist else 'nothing'})")
            continue
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        environments = [{**LAMBDA_MARKERS, "extra": extra} for extra in requirement.extras or {""}]
        for line in dist.requires or []:
            needed = Requirement(line)
            if needed.marker is None or any(needed.marker.evaluate(env) for env in environments):
                wanted.append(needed)
    assert not missing, missing
    assert {"pydantic-core", "botocore", "aws-xray-sdk", "cffi"} <= {name for name, _ in seen}  # the closure
    absent = [  # from RECORD itself: Distribution.files leaves out the files that are missing
        f"{name}: {row[0]}"
        for name, dist in installed.items()
        for row in csv.reader((dist.read_text("RECORD") or "").splitlines())
        if row and not row[0].startswith("../") and not (python / row[0]).is_file()
    ]
    assert not absent, absent[:10]


def _pyc_header(pyc: Path) -> tuple[bytes, int, bytes]:
    data = pyc.read_bytes()[:16]
    return data[:4], int.from_bytes(data[4:8], "little"), data[8:16]


def test_the_layer_ships_bytecode_lambda_uses_whatever_the_files_dates() -> None:
    """Every module of the layer has CPython 3.12 bytecode beside it, hash-based and checked: SAM's zip
    dates every file 1980-01-01, so a timestamp-based .pyc would never match its source and /opt is
    read-only — each cold start would compile every module it imports and throw the result away."""
    python = BUILD / "RuncredsLayer" / "python"
    sources = sorted(python.rglob("*.py"))
    assert len(sources) > 500, len(sources)  # botocore, pydantic, Powertools, runcreds...
    missing, wrong = [], []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"  # optimisation level 0
        if not pyc.is_file():
            missing.append(source.relative_to(python).as_posix())
            continue
        magic, flags, digest = _pyc_header(pyc)
        # PEP 552: flags 0b11 = hash-based, source checked; the hash is the source's own
        if (magic, flags, digest) != (PYTHON312_MAGIC, 0b11, importlib.util.source_hash(source.read_bytes())):
            wrong.append(source.relative_to(python).as_posix())
    assert not missing, missing[:10]
    assert not wrong, wrong[:10]
    assert not list(python.rglob("*.opt-*.pyc"))  # bytecode of an optimisation level Lambda does not import
    assert not (python / "bin").exists()  # pip's console scripts: nothing on Lambda runs them


# Imports from a copy of the built layer as Lambda has it: the copy alone on the path besides the standard
# library (-S -I: no site-packages, nothing of this virtualenv), every file dated 1980-01-01 as SAM's zip
# dates it, no bytecode written (/opt is read-only). It prints the layer's modules it compiled, and every
# module it imported from anywhere but the copy or the standard library.
IMPORT_PROBE = """
import builtins, json, sys, sysconfig
assert sys.flags.no_site and sys.flags.isolated and not sys.flags.optimize, sys.flags
layer, modules = sys.argv[1], sys.argv[2:]
compiled = []
real = builtins.compile
def compile(source, filename, *args, **kwargs):
    compiled.append(str(filename))
    return real(source, filename, *args, **kwargs)
builtins.compile = compile
sys.path.insert(0, layer)
for module in modules:
    __import__(module)
stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
elsewhere = sorted(
    name for name, module in sys.modules.items()
    if getattr(module, "__file__", None) and not module.__file__.startswith((layer, *stdlib))
)
print(json.dumps({"compiled": [f for f in compiled if f.startswith(layer)], "elsewhere": elsewhere,
                  "modules": len(sys.modules)}))
"""
# Pure Python, so that this machine (not arm64) can load them: most of what a cold start imports.
PURE_MODULES = ["botocore.session", "botocore.client", "urllib3", "jmespath", "dateutil.parser",
                "aws_lambda_powertools.logging.logger"]  # fmt: skip


def _layer_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "python"
    shutil.copytree(BUILD / "RuncredsLayer" / "python", copy, ignore=shutil.ignore_patterns("*.so", "data"))
    date_as_sam_zips(copy)
    return copy


def _import(copy: Path, *modules: str) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-B", "-S", "-I", "-c", IMPORT_PROBE, str(copy), *modules],
        capture_output=True, text=True, check=True, cwd=copy.parent,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_an_import_from_the_built_layer_compiles_nothing(tmp_path: Path) -> None:
    copy = _layer_copy(tmp_path)
    result = _import(copy, *PURE_MODULES)
    assert result["elsewhere"] == []  # all of it from the layer: nothing it lacks came from this machine
    assert result["modules"] > 200
    assert result["compiled"] == []


def test_a_module_whose_source_differs_from_its_bytecode_is_compiled_again(tmp_path: Path) -> None:
    """Another layer merged over these packages in /opt could replace a source and not its bytecode: the
    bytecode is checked against the source it was compiled from, and the new source is what runs."""
    copy = _layer_copy(tmp_path)
    changed = copy / "jmespath" / "__init__.py"
    changed.write_text(changed.read_text() + "\nfrom no_such_module_anywhere import nothing\n")
    os.utime(changed, (ZIP_EPOCH, ZIP_EPOCH))  # the same date: only its content tells it apart
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _import(copy, "jmespath")
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in failed.value.stderr
