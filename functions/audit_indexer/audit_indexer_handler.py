"""AuditIndexerFunction: SQS batches of CloudTrail records → the audit index, with partial batch failures."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from runcreds.logic.audit.ingest import handle_sqs_batch
from runcreds.observability import logger, metrics, tracer
from runcreds.settings import AuditIndexerSettings


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_sqs_batch(event, AuditIndexerSettings.from_env())
