"""pytest plugin for `make mutation-recheck`: after `make mutation` wrote mutants/, run the collected tests
once per named mutant in ONE session (mutmut's own trampolines pick the mutant from MUTANT_UNDER_TEST),
so the embedded stack starts once instead of once per mutant. Each mutant's verdict goes to a JSON file:
"killed by <test>", "timeout by <test>" (a test ran over 30 s: a mutant that loops) or "survived" (no
collected test failed). A file of verdicts is resumed: names already in it are not run again; a test
that hangs outside pytest's reports ends the session after its verdict (run the target again to go on).

    cd mutants && RECHECK_NAMES=names.txt RECHECK_OUT=verdicts.json PYTHONPATH=src:. \\
        ../.venv/bin/python -m pytest -p no:cacheprovider -p no:timeout -p tests.mutation_recheck TESTS...
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from types import FrameType

import pytest
from _pytest.runner import runtestprotocol

TEST_SECONDS = 30


class _Hung(Exception):
    pass


def _hung(_signum: int, _frame: FrameType | None) -> None:
    raise _Hung(f"Timeout > {TEST_SECONDS}s")


def _verdict(items: list[pytest.Item]) -> str:
    for index, item in enumerate(items):
        signal.signal(signal.SIGALRM, _hung)
        signal.alarm(TEST_SECONDS)
        try:  # the next item is the first again after the last: session fixtures stay up between mutants
            reports = runtestprotocol(item, log=False, nextitem=items[(index + 1) % len(items)])
        except _Hung:  # out of a place pytest reports from: the session's state is unknown, so it ends here
            raise _Hung(f"timeout by {item.nodeid}") from None
        finally:
            signal.alarm(0)
        failed = [report for report in reports if report.failed]
        if failed:
            if index + 1 < len(items):  # tear down to what the first item shares with this one
                item.session._setupstate.teardown_exact(items[0])
            hung = any("Timeout >" in str(report.longrepr) for report in failed)
            return f"{'timeout' if hung else 'killed'} by {item.nodeid}"
    return "survived"


def pytest_runtestloop(session: pytest.Session) -> bool:
    names = Path(os.environ["RECHECK_NAMES"]).read_text().split()
    out = Path(os.environ["RECHECK_OUT"])
    verdicts: dict[str, str] = json.loads(out.read_text()) if out.exists() else {}
    os.environ["MUTANT_UNDER_TEST"] = ""
    runtestprotocol(session.items[0], log=False, nextitem=session.items[0])  # session fixtures up, untimed
    for name in names:
        if name not in verdicts:
            os.environ["MUTANT_UNDER_TEST"] = name
            try:
                verdicts[name] = _verdict(session.items)
            except _Hung as hung:  # recorded; run the target again to go on with the next mutant
                verdicts[name] = str(hung)
                out.write_text(json.dumps(verdicts, indent=1, sort_keys=True))
                break
            out.write_text(json.dumps(verdicts, indent=1, sort_keys=True))
    os.environ["MUTANT_UNDER_TEST"] = ""
    return True
