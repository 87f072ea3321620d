"""pytest plugin for `make mutation-recheck`: after `make mutation` wrote mutants/, run the collected tests
once per named mutant in ONE session (mutmut's own trampolines pick the mutant from MUTANT_UNDER_TEST),
so the embedded stack starts once instead of once per mutant. Each mutant's verdict goes to a JSON file:
"killed by <test>", "timeout by <test>" (a test ran over 30 s, or RECHECK_TEST_SECONDS: a mutant that
loops; on a loaded machine a passing test may too, so re-run timeouts with more) or "survived" (no
collected test failed). A file of verdicts is resumed: names already in it are not run again; a test
that hangs outside pytest's reports ends the session after its verdict (run the target again to go on).

With RECHECK_COVERING=mutmut-stats.json (the file `make mutation` wrote in mutants/, whose stats phase
records which tests call each function and how long each took), a mutant is run against only the collected
tests that call its function, the fastest first, as mutmut itself does; one whose function none of them calls
is "no tests". Keep a TESTS selection either all on the embedded stack or free of moto's in-process mock
(mock_aws resets the backends the stack's server shares in the process: the stack's tests after it fail).

    cd mutants && RECHECK_NAMES=names.txt RECHECK_OUT=verdicts.json PYTHONPATH=src:. \\
        ../.venv/bin/python -m pytest -p no:cacheprovider -p no:timeout -p tests.mutation_recheck TESTS...
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import cast

import pytest
from _pytest.runner import runtestprotocol

TEST_SECONDS = int(os.environ.get("RECHECK_TEST_SECONDS", "30"))  # a test over it is a timeout


class _Hung(Exception):
    pass


def _hung(_signum: int, _frame: FrameType | None) -> None:
    raise _Hung(f"Timeout > {TEST_SECONDS}s")


class _ParentsOf:
    """What a test is torn down to when `item` runs next: the collectors (and their fixtures) `item`
    descends from, without `item` itself, which may be the test just run (its function fixtures go)."""

    def __init__(self, item: pytest.Item) -> None:
        self._chain = item.listchain()[:-1]

    def listchain(self) -> list[pytest.Item]:
        return cast(list[pytest.Item], self._chain)


def _next(item: pytest.Item | None) -> pytest.Item | None:
    return cast(pytest.Item, _ParentsOf(item)) if item is not None else None


def _verdict(items: list[pytest.Item], after: pytest.Item | None) -> str:
    """Runs `items` up to the first failure; `after` is the test the session runs next."""
    for index, item in enumerate(items):
        signal.signal(signal.SIGALRM, _hung)
        signal.alarm(TEST_SECONDS)
        try:  # torn down only to what the next test needs: session fixtures stay up between mutants
            reports = runtestprotocol(
                item, log=False, nextitem=_next(items[index + 1] if index + 1 < len(items) else after)
            )
        except _Hung:  # out of a place pytest reports from: the session's state is unknown, so it ends here
            raise _Hung(f"timeout by {item.nodeid}") from None
        finally:
            signal.alarm(0)
        failed = [report for report in reports if report.failed]
        if failed:
            if index + 1 < len(items):  # tear down to what the next test shares with this one
                item.session._setupstate.teardown_exact(_next(after))
            hung = any("Timeout >" in str(report.longrepr) for report in failed)
            return f"{'timeout' if hung else 'killed'} by {item.nodeid}"
    return "survived"


def _tests_of(session: pytest.Session) -> Callable[[str], list[pytest.Item]]:
    """The collected tests to run against a mutant: all, or (RECHECK_COVERING) those calling its function."""
    covering = os.environ.get("RECHECK_COVERING")
    if not covering:
        return lambda _name: session.items
    stats = json.loads(Path(covering).read_text())
    by_function: dict[str, list[str]] = stats["tests_by_mangled_function_name"]
    seconds: dict[str, float] = stats["duration_by_test"]

    def tests(name: str) -> list[pytest.Item]:  # the fastest first, as mutmut orders them
        nodeids = set(by_function.get(name.partition("__mutmut_")[0], ()))
        return sorted(
            (item for item in session.items if item.nodeid in nodeids), key=lambda i: seconds.get(i.nodeid, 0)
        )

    return tests


def pytest_runtestloop(session: pytest.Session) -> bool:
    out = Path(os.environ["RECHECK_OUT"])
    verdicts: dict[str, str] = json.loads(out.read_text()) if out.exists() else {}
    tests = _tests_of(session)
    plan = []
    for name in Path(os.environ["RECHECK_NAMES"]).read_text().split():
        if name not in verdicts:
            if items := tests(name):
                plan.append((name, items))
            else:
                verdicts[name] = "no tests"
    out.write_text(json.dumps(verdicts, indent=1, sort_keys=True))
    if not plan:
        return True
    os.environ["MUTANT_UNDER_TEST"] = ""
    first = plan[0][1][0]
    runtestprotocol(first, log=False, nextitem=_next(first))  # session fixtures up, untimed
    for index, (name, items) in enumerate(plan):
        os.environ["MUTANT_UNDER_TEST"] = name
        try:
            verdicts[name] = _verdict(items, plan[index + 1][1][0] if index + 1 < len(plan) else None)
        except _Hung as hung:  # recorded; run the target again to go on with the next mutant
            verdicts[name] = str(hung)
            out.write_text(json.dumps(verdicts, indent=1, sort_keys=True))
            break
        out.write_text(json.dumps(verdicts, indent=1, sort_keys=True))
    os.environ["MUTANT_UNDER_TEST"] = ""
    return True
