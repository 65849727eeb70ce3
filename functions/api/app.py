"""On-demand API function (API Gateway REST proxy, IAM auth): see ``spcs_gateway.api``.

Dependencies are built once per container (module level) and reused across warm invocations.
The event and the response are never logged (they carry PHI); ``access_log`` writes one
PHI-free line per request.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from spcs_gateway.api import access_log, build_api
from spcs_gateway.observability import get_logger, get_metrics, get_tracer

logger = get_logger()
metrics = get_metrics("api")
tracer = get_tracer()
app = build_api(logger=logger)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@access_log(logger=logger, metrics=metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
