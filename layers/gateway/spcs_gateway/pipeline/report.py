"""What a batch leaves behind for operators: log lines, metrics and trace annotations.

Ids, counts, codes and timings only: never a body, a note, an image or a model output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from spcs_gateway.errors import ErrorCode, FailureKind, GatewayError
from spcs_gateway.pipeline.outcomes import Decision
from spcs_gateway.pipeline.steps import receive_count


class BatchReporter:
    def __init__(
        self,
        service_name: str,
        *,
        logger: Logger | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._service_name = service_name
        self.logger = logger
        self._metrics = metrics
        self._tracer = tracer

    def record(
        self, message: str, record: SQSRecord, event_id: str | None, error: GatewayError
    ) -> None:
        if self.logger is None:
            return
        self.logger.set_correlation_id(event_id or record.message_id)
        try:
            self.logger.warning(
                message,
                extra={
                    "message_id": record.message_id,
                    "event_id": event_id,
                    "error_code": str(error.code),
                    "failure_kind": error.kind.value,
                    "http_status": error.status,
                    "receive_count": receive_count(record),
                },
            )
        finally:
            self.logger.set_correlation_id(None)

    def exception(self, message: str) -> None:
        if self.logger is not None:
            self.logger.exception(message)  # the formatter withholds exception messages

    def warning(self, message: str, **extra: Any) -> None:
        if self.logger is not None:
            self.logger.warning(message, extra=extra)

    def batch(
        self,
        records: Sequence[SQSRecord],
        decisions: Mapping[str, Decision],
        timings: dict[str, int],
        *,
        events: int | None = None,
    ) -> None:
        counts = Counter(
            str(decisions[r.message_id].outcome) for r in records if r.message_id in decisions
        )
        if self.logger is not None:
            self.logger.info(
                "batch processed",
                extra={
                    "service_name": self._service_name,
                    "records": len(records),
                    "events": events,
                    "outcomes": dict(counts),
                    "timings_ms": timings,
                },
            )
        if self._metrics is not None:
            self._emit_metrics(len(records), decisions, timings, counts)
        if self._tracer is not None:
            retried = sum(1 for d in decisions.values() if d.error is not None)
            # Annotations (indexed, searchable): ids and counts only. No metadata is recorded.
            self._tracer.put_annotation(key="service", value=self._service_name)
            self._tracer.put_annotation(key="records", value=cast(Any, len(records)))
            self._tracer.put_annotation(key="retried", value=cast(Any, retried))

    def _emit_metrics(
        self,
        records: int,
        decisions: Mapping[str, Decision],
        timings: dict[str, int],
        counts: Mapping[str, int],
    ) -> None:
        from spcs_gateway.observability import emit_outcome_counts

        assert self._metrics is not None
        self._metrics.add_metric(name="BatchRecords", unit=MetricUnit.Count, value=records)
        causes = [d.cause for d in decisions.values() if d.cause is not None]
        alarmable = {
            # Snowflake refused the gateway's credentials (bad key, PAT, role).
            "AuthFailures": sum(1 for c in causes if c.code is ErrorCode.AUTH_FAILED),
            # Records kept back by a configuration fault (signature mismatch, a missing grant,
            # a wrong method URL, refused credentials), never dead-lettered.
            "ConfigurationFaults": sum(1 for c in causes if c.kind is FailureKind.CONFIGURATION),
        }
        for name, value in alarmable.items():
            if value:
                self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        if "infer_ms" in timings:
            self._metrics.add_metric(
                name="InferenceTime", unit=MetricUnit.Milliseconds, value=timings["infer_ms"]
            )
        emit_outcome_counts(self._service_name, counts)
