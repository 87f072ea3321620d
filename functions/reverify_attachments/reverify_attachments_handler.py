"""ReverifyAttachmentsFunction: on a schedule, verify every broker-mode attachment again."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from runcreds.logic.reverify import handle_schedule
from runcreds.observability import logger, metrics, tracer
from runcreds.settings import ReverifySettings


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The scheduled event carries nothing but its time: the checkpoint says where the pass stands.
    logger.info("scheduled re-verification", extra={"scheduled_at": event.get("time")})
    return handle_schedule(ReverifySettings.from_env(), context.get_remaining_time_in_millis() / 1000)
