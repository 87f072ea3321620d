"""The worker's record checks without AWS (tests/unit/test_worker_checks.py, test_worker_mode.py): a
stand-in for the phase's partition, and records as runcreds writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
)

from runcreds.dal.credentials import PhaseRecords
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.run import Phase, RunPhase
from runcreds_cli.worker import CredentialsFetcher, WorkerError

RUN = RunPhase(account="acme", stack="network", run_id="01RUNWORKERCHECKS", phase=Phase.PLAN)
FIRST, SECOND = "01JD4Z8Q2M6V1T4B3X9N0C7K5R", "01JD4Z8Q2M6V1T4B3X9N0C7K5S"


class Partition:
    """The store's one call the worker makes, answered from memory (or by raising `error`)."""

    table_name = "runcreds-credentials"

    def __init__(self, *records: CredentialRecord, finished: bool = False, error: BaseException | None = None):
        self.phase = PhaseRecords(finished=finished, records=list(records))
        self.error = error
        self.reads = 0

    def read_phase(self, run: RunPhase) -> PhaseRecords:
        assert run == RUN
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.phase


def record(integration_id: str = FIRST, status: RecordStatus = RecordStatus.READY, **fields: Any) -> CredentialRecord:
    values: dict[str, Any] = {"ciphertext": b"sealed", "expires_at": datetime.now(UTC) + timedelta(hours=1)}
    values.update(fields)
    return CredentialRecord(**RUN.model_dump(), integration_id=integration_id, status=status, **values)


def fetcher(partition: Partition, api_url: str | None = None) -> CredentialsFetcher:
    fetch = CredentialsFetcher(partition.table_name, api_url=api_url)
    fetch.store = partition  # type: ignore[assignment]
    return fetch


def refusal(integration_id: str | None = None, **partition: Any) -> WorkerError:
    records = partition.pop("records", ())
    with pytest.raises(WorkerError) as raised:
        fetcher(Partition(*records, **partition)).fetch(RUN, integration_id)
    return raised.value


def client_error(code: str, status: int = 400, retries: int = 0, operation: str = "Query") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} says no"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return ClientError(response, operation)
