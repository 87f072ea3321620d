"""Worker-mode OIDC integrations: runcreds holds no session for them; the worker asks the refresh route for
a freshly minted token (docs/interface.md §7) and exchanges it itself (AssumeRoleWithWebIdentity)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from runcreds.dal.attachments import AttachmentsStore
from runcreds.dal.credentials import CredentialsStore
from runcreds.exceptions import NotFoundError, RefreshRefusedError
from runcreds.logic import oidc
from runcreds.logic.refresh import PHASE_FINISHED, failures_counted, granting_attachment
from runcreds.logic.sealing import oidc_signer
from runcreds.models.bodies import WebIdentityToken
from runcreds.models.entities import CredentialRecord, RecordStatus
from runcreds.models.run import RunPhase
from runcreds.observability import logger, metrics
from runcreds.run_scope import AssumeRoleSpec, RunScope
from runcreds.settings import AttachSettings


@dataclass(frozen=True)
class WorkerToken:
    """A token for a worker-mode OIDC integration's worker to exchange itself, with the exchange's
    parameters. It goes to the route's answer only: never stored, logged or put in an exception."""

    integration_id: str
    token: str
    expires_at: datetime
    spec: AssumeRoleSpec

    def __repr__(self) -> str:  # never print the token by accident
        return f"WorkerToken(integration_id={self.integration_id!r}, expires_at={self.expires_at.isoformat()})"

    def answer(self) -> WebIdentityToken:
        """The route's answer: the token with the AssumeRoleWithWebIdentity parameters of its spec."""
        exchange = self.spec.model_dump(include=set(WebIdentityToken.model_fields))
        return WebIdentityToken(
            integration_id=self.integration_id, token=self.token, expires_at=self.expires_at, **exchange
        )


class WorkerTokenService:
    def __init__(self, settings: AttachSettings, issuer: str | None = None) -> None:
        """`issuer`: the OIDC issuer URL, derived from the request when not configured (as RefreshService's)."""
        self.settings = settings.model_copy(update={"oidc_issuer_url": issuer}) if issuer else settings
        self.records = CredentialsStore(settings.credentials_table)
        self.attachments = AttachmentsStore(settings.attachments_table)

    def worker_token(self, run: RunPhase, integration_id: str) -> WorkerToken:
        """A worker-mode OIDC integration (docs/interface.md §7): runcreds holds no session for it; the worker asks
        here for a freshly minted token (claims exactly §7, a new `jti`, TOKEN_LIFETIME) and exchanges it
        itself. Only while the phase is open, the phase was vended in worker mode with OIDC and the
        attachment still grants the phase's access."""
        with failures_counted("worker token"):
            return self._worker_token(run, integration_id)

    def _worker_token(self, run: RunPhase, integration_id: str) -> WorkerToken:
        phase = self.records.read_phase(run)
        record = next((r for r in phase.records if r.integration_id == integration_id), None)
        _check_worker_token(run, record, phase.finished, integration_id)
        attachment = granting_attachment(self.attachments, run, integration_id)
        if not (attachment.assume_role_on_worker and attachment.trust == "oidc"):
            raise RefreshRefusedError(
                f"integration {integration_id} is no longer a worker-mode OIDC integration (it was changed after "
                "the vend): no token; the next run phase is vended as it is now",
                "mode_changed",
            )
        key_arn, issuer = oidc_signer(self.settings)
        scope = RunScope(run, integration_id)
        claims = oidc.claims_for(issuer, scope)
        token = oidc.mint(key_arn, claims)
        # A Finished seen while the token was signed: it is dropped, never answered.
        if not self.records.phase_is_open(run):
            raise RefreshRefusedError(
                f"the {run.phase} phase of run {run.run_id} finished: no token for it any more", PHASE_FINISHED
            )
        metrics.add_metric(name="WorkerTokensIssued", unit=MetricUnit.Count, value=1)
        logger.info("worker token issued", extra={"integration": integration_id, "expires_at": claims["exp"]})
        return WorkerToken(
            integration_id=integration_id,
            token=token,
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            spec=scope.assume_role_spec(attachment.role_arn, attachment.duration_seconds, attachment.region),
        )


def _check_worker_token(run: RunPhase, record: CredentialRecord | None, finished: bool, integration_id: str) -> None:
    if finished:  # final, as for a refresh (docs/interface.md §1)
        raise RefreshRefusedError(
            f"the {run.phase} phase of run {run.run_id} has finished: no token for it any more", PHASE_FINISHED
        )
    if record is None:
        raise NotFoundError(
            f"the {run.phase} phase of run {run.run_id} on stack {run.stack} was never vended for integration "
            f"{integration_id}; ask only after Run Phase Started has been handled"
        )
    if record.status is RecordStatus.PENDING:
        raise RefreshRefusedError("the phase's vend is still under way: retry in a second", "not_ready")
    if record.status is not RecordStatus.WORKER or record.trust != "oidc":
        raise RefreshRefusedError(
            f"integration {integration_id} was not vended in worker mode with OIDC for this phase: there is no "
            "token to answer; refresh without web_identity_token",
            "not_worker_oidc",
        )
