"""Image router: medical-image events on the images queue -> zero-shot image service -> results.

Dependencies are built once per container (module level) and reused across warm invocations.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from spcs_gateway.backoff import jitter_rng
from spcs_gateway.observability import get_logger, get_metrics, get_tracer
from spcs_gateway.pipeline import build_pipeline
from spcs_gateway.registry import Task

logger = get_logger()
metrics = get_metrics(os.environ["SERVICE_NAME"])
tracer = get_tracer()
# Retry jitter from the OS on every draw (docs/PERFORMANCE.md: SnapStart).
pipeline = build_pipeline(
    service_name=os.environ["SERVICE_NAME"],
    task=Task.ZERO_SHOT_IMAGE_CLASSIFICATION,
    rng=jitter_rng(),
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pipeline.handle(event, context)
