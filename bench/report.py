"""`make bench`: every benchmark in bench/, one after another (each against its own embedded stack), then
one table of what they measured — each figure's median over its trials, with min and max, beside its goal.

    .venv/bin/python bench/report.py [--quick]

Every ratio in the table was measured in this run, both of its sides interleaved on the same moto server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOYED = ["--bytecode", "--only", "vend,attach,audit indexer (100 events),audit API (run page)"]
BENCHES = [  # script, its arguments, and its arguments with --quick
    ("vend.py", ["--events", "200"], ["--events", "40"]),
    ("audit.py", ["--events", "1000"], ["--events", "300"]),
    ("refresh.py", ["--rounds", "50"], ["--rounds", "10"]),
    ("cold_start.py", ["--trials", "7"], ["--trials", "3"]),
    ("cold_start.py", [*DEPLOYED, "--trials", "5"], [*DEPLOYED, "--trials", "2"]),  # the layer's bytecode
    ("worker_cli.py", ["--trials", "7"], ["--trials", "3"]),
    ("imports.py", ["--runs", "10"], ["--runs", "3"]),  # reference figures: what the stack costs a process
]


def _verdict(passed: bool | None) -> str:
    return "" if passed is None else "ok" if passed else "MISSED"  # None: a reference figure, no goal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run, not a measurement)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp, "results.jsonl")
        env = {**os.environ, "RUNCREDS_BENCH_RESULTS": str(results)}
        failed = []
        for script, full, quick in BENCHES:
            print(f"== bench/{script} {' '.join(quick if args.quick else full)}", flush=True)
            code = subprocess.run([sys.executable, str(ROOT / "bench" / script), *(quick if args.quick else full)],
                                  env=env).returncode  # fmt: skip
            if code:
                failed.append(script)
        rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    width = max([len(r["name"]) for r in rows] + [10])
    print()
    print(f"{'benchmark':<{width}}  {'median':>8}  {'min':>8}  {'max':>8}  {'n':>4}  {'goal':<8}  ")
    for r in rows:
        unit = r["unit"]
        cells = "  ".join(f"{r[k]:8.2f}" for k in ("median", "min", "max"))
        print(f"{r['name']:<{width}}  {cells}  {r['n']:>4}  {r['goal'] + unit:<8}  {_verdict(r['pass'])}")
    cpu = os.cpu_count()
    print(f"\n{platform.platform()}, {cpu} cores, python {platform.python_version()}; "
          f"{time.perf_counter() - started:.0f} s{'; --quick' if args.quick else ''}")  # fmt: skip
    if failed:
        print(f"failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
