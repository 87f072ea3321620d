"""What a fresh process pays before a handler's own code: CPU time of fresh interpreters, each doing one step
more than the last — boto3 and a client, pydantic and a first model, Powertools' Logger and Metrics, its
event handler — and of importing each handler. Reference figures for the cold-start table (no goals).

    .venv/bin/python bench/imports.py [--runs 10]

CPU time (user + system of the child, `resource.getrusage`), not wall time: a shared machine's load
stretches wall time but barely the CPU a process needs, and a cold start on Lambda is CPU-bound. Each
figure is the median over the runs, the steps interleaved run by run; no AWS request is made.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import record  # noqa: E402 - run as a script: the repository root is not on the path

CLIENT = "import boto3\nboto3.session.Session().client('dynamodb', region_name='us-east-1')\n"
MODEL = "from pydantic import BaseModel\nclass Event(BaseModel):\n    run_id: str\nEvent(run_id='r')\n"
POWERTOOLS = "from aws_lambda_powertools import Logger, Metrics\nLogger(service='s'); Metrics(namespace='n')\n"
RESOLVER = (
    "from aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
    "APIGatewayRestResolver(enable_validation=True)\n"
)
STEPS = {
    "empty interpreter": "pass",
    "+ boto3 and one client": CLIENT,
    "+ pydantic and one model": CLIENT + MODEL,
    "+ Powertools Logger and Metrics (the floor's imports)": CLIENT + MODEL + POWERTOOLS,
    "+ Powertools' validating API resolver": CLIENT + MODEL + POWERTOOLS + RESOLVER,
}
HANDLERS = {
    "import the vend handler": ("vend_credentials", "vend_credentials_handler"),
    "import the attach API handler": ("attach_api", "attach_api_handler"),
    "import the audit indexer handler": ("audit_indexer", "audit_indexer_handler"),
    "import the audit API handler": ("audit_api", "audit_api_handler"),
}


def cpu_ms(code: str, cwd: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cases = {name: (code, ROOT) for name, code in STEPS.items()}
    cases |= {name: (f"import {module}", ROOT / "functions" / folder) for name, (folder, module) in HANDLERS.items()}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    cpu_ms("import boto3, pydantic, aws_lambda_powertools", ROOT)  # the page cache warm, untimed
    for run in range(args.runs):
        names = list(cases) if run % 2 == 0 else list(reversed(cases))
        for name in names:
            samples[name].append(cpu_ms(*cases[name]))
    previous = None
    for name in cases:
        median = statistics.median(samples[name])
        step = f"  (+{median - previous:.0f})" if previous is not None and name in STEPS else ""
        print(f"{name:<56} {median:6.0f} ms CPU{step}")
        previous = median if name in STEPS else previous
        record(f"CPU of a fresh process: {name}", samples[name], "", None, " ms")
    print(f"runs: {args.runs} per line, interleaved; python {sys.version.split()[0]}, {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
