"""The client package as a worker image installs it: `pip install ./layers/runcreds ./client` into a
fresh virtualenv, with no Lambda dependency and no development kit, serves a run's credentials."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runcreds_dev.stack import EmbeddedStack
from tests.support import ROOT, Tenant

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def worker_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two packages copied out of the checkout (a build leaves nothing in it), installed as a worker would."""
    where = tmp_path_factory.mktemp("worker-image")
    for package in ("layers/runcreds", "client"):
        shutil.copytree(ROOT / package, where / package, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         str(where / "layers" / "runcreds"), str(where / "client")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return venv


def test_the_client_installs_without_lambda_dependencies_or_the_development_kit(worker_venv: Path) -> None:
    installed = subprocess.run(  # noqa: S603
        [str(worker_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {package["name"].lower() for package in json.loads(installed)}
    assert {"runcreds", "runcreds-cli", "boto3", "pydantic"} <= names
    assert not names & {"aws-lambda-powertools", "aws-xray-sdk", "moto", "runcreds-dev", "cryptography"}, names


def test_the_installed_client_serves_the_runs_credentials(
    worker_venv: Path, stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str],
    integrate: Callable[..., str], publish: Callable[..., None],
) -> None:  # fmt: skip
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    answered = subprocess.run(  # noqa: S603
        [str(worker_venv / "bin" / "runcreds"), "worker", "credentials", "--account", tenant.account,
         "--stack", tenant.stack, "--run-id", tenant.run_id, "--phase", "plan"],
        env=stack.client_env(), capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert answered.returncode == 0, answered.stderr
    process = json.loads(answered.stdout)
    identity = stack.client(
        "sts", stack.session(process["AccessKeyId"], process["SecretAccessKey"], process["SessionToken"])
    ).get_caller_identity()
    assert identity["Arn"].endswith(f"/{tenant.run_id}")


def test_the_installed_client_says_where_the_embedded_stack_is(worker_venv: Path) -> None:
    answered = subprocess.run(  # noqa: S603
        [str(worker_venv / "bin" / "runcreds"), "local", "demo"], capture_output=True, text=True, check=False
    )
    assert answered.returncode == 2
    assert answered.stderr.strip() == (
        "runcreds local: the embedded stack is in the development kit: pip install ./devkit"
    )
