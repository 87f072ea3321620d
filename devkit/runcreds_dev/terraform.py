"""Terraform against the embedded stack, offline: the hashicorp/aws provider from a filesystem mirror
(these machines have no registry access), for `make demo` and the real-client tests."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

MIRROR_VARIABLE = "RUNCREDS_TF_PLUGIN_MIRROR"
# Where a filesystem mirror of hashicorp/aws usually lives when the variable is not set.
MIRROR_PLACES = ("/opt/tf-plugins", "~/.terraform.d/plugins", "/usr/share/terraform/plugins")
HOW_TO_GET_IT = (
    "install Terraform (https://developer.hashicorp.com/terraform/install) and, offline, point "
    f"{MIRROR_VARIABLE} at a filesystem mirror of hashicorp/aws (`terraform providers mirror DIR`)"
)


def plugin_mirror() -> str | None:
    """RUNCREDS_TF_PLUGIN_MIRROR, else the usual places a filesystem mirror of hashicorp/aws lives."""
    for candidate in (os.environ.get(MIRROR_VARIABLE, ""), *(os.path.expanduser(p) for p in MIRROR_PLACES)):
        if candidate and glob.glob(os.path.join(candidate, "registry.terraform.io/hashicorp/aws/*")):
            return candidate
    return None


def unavailable() -> str | None:
    """Why Terraform cannot run here (no terraform on PATH, no mirror), or None when it can."""
    if shutil.which("terraform") is None:
        return "terraform is not on PATH"
    if plugin_mirror() is None:
        return f"no filesystem mirror of hashicorp/aws ({MIRROR_VARIABLE} unset, none in {', '.join(MIRROR_PLACES)})"
    return None


def workspace(directory: Path, configuration: str) -> dict[str, str]:
    """Writes `configuration` as main.tf and a CLI configuration that installs providers from the mirror
    only; returns the environment terraform needs (on top of the caller's) to use them."""
    mirror = plugin_mirror()
    if mirror is None:
        raise RuntimeError(unavailable())
    (directory / "main.tf").write_text(configuration)
    (directory / "cli.tfrc").write_text(
        f'provider_installation {{\n  filesystem_mirror {{ path = "{mirror}" }}\n'
        '  direct { exclude = ["registry.terraform.io/*/*"] }\n}\n'
    )
    return {
        "TF_CLI_CONFIG_FILE": str(directory / "cli.tfrc"),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",  # no call home
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def init(directory: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`terraform init` in `directory` (terraform from PATH, as a user runs it), providers from the mirror."""
    return subprocess.run(
        ["terraform", "init", "-input=false", "-no-color"],  # noqa: S607 - the user's terraform
        cwd=directory, capture_output=True, text=True, env={**os.environ, **env}, timeout=timeout, check=False,
    )  # fmt: skip
