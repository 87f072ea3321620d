"""VendCredentialsFunction: run-phase events from the runcreds bus → phase-scoped credentials."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from runcreds.logic.vend import handle_run_event
from runcreds.observability import logger, metrics, tracer
from runcreds.settings import VendSettings


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_run_event(event, VendSettings.from_env())
