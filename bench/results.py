"""One row per measured figure, for `make bench`'s table (bench/report.py): each benchmark prints its own
lines and, when RUNCREDS_BENCH_RESULTS names a file, appends its rows there as JSON lines."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence


def record(name: str, samples: Sequence[float], goal: str, passed: bool | None, unit: str = "") -> None:
    """samples: the per-trial values (paired ratios, counts); the table shows their median, min and max.
    A reference figure (no goal of its own) has goal "" and passed None."""
    path = os.environ.get("RUNCREDS_BENCH_RESULTS")
    if not path:
        return
    row = {
        "name": name,
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
        "unit": unit,
        "goal": goal,
        "pass": passed,
    }
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
