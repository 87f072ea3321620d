"""Whether a run phase has finished, in one place for the refresh route and the worker alike."""

from __future__ import annotations

from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.events import RunPhase


def phase_has_finished(run: RunPhase, records: list[CredentialRecord]) -> bool:
    """Whether the phase's Run Phase Finished has been seen. Today a Finished turns every record of the
    phase into a tombstone (CredentialsStore.finish); kept in one place so that it can follow the store."""
    return any(r.status is RecordStatus.FINISHED for r in records)
