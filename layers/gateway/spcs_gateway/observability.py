"""Logger, Metrics and Tracer that carry ids, counts, codes and timings only.

The rule is enforced where the data is produced (no module logs text, images, labels or model
output). This module adds safety nets:

* ``PhiSafeFormatter`` drops known PHI keys (``text``, ``body``, ``output`` ...) at any depth of
  a log record, and formats exceptions as frames plus the exception's type: never its message,
  which a library may have built from input values.
* Metrics (EMF) carry two dimensions only: ``service`` and ``outcome``.
* The Tracer never records handler responses or exceptions as metadata
  (``capture_response=False``/``capture_error=False`` on every decorator, and the
  ``POWERTOOLS_TRACER_CAPTURE_*`` variables default to ``false``), and it patches only botocore and
  httpx (their segments hold the operation, URL and status, not bodies). X-Ray's botocore patch
  also records the request parameters on its allow-list (``aws_xray_sdk.ext.boto_utils``); for
  S3 those include the object key, which often embeds an MRN or accession number.
  ``redact_xray_aws_parameters`` takes the key, version, prefix and copy source off that list
  before the first call is traced: S3 subsegments keep the operation, bucket and status.
* Third-party loggers that print request bodies at DEBUG (botocore, the Snowflake connector's
  bind values) are held at WARNING even if the root logger is set to DEBUG.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import LogRecord
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from spcs_gateway.settings import env_str

DEFAULT_SERVICE = "spcs-gateway"
DEFAULT_NAMESPACE = "SpcsGateway"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"

# Compared case-insensitively. Generic names (``data``, ``value``) are included on purpose: the
# gateway's own log lines never use them, so dropping them costs nothing.
PHI_KEYS = frozenset(
    {
        "text",
        "note",
        "note_text",
        "notes",
        "image",
        "images",
        "image_bytes",
        "base64",
        "bytes",
        "output",
        "outputs",
        "label",
        "labels",
        "candidate_labels",
        "entities",
        "entity",
        "word",
        "words",
        "score",
        "scores",
        "body",
        "attributes",
        "inputs",
        "input",
        "data",
        "value",
        "values",
        "result",
        "results",
        "content",
        "payload",
        "query",
        "exception_notes",
        "stack_trace",
    }
)
REDACTED = "[dropped]"
_MAX_DEPTH = 12

# Loggers that may print request bodies or bound SQL values at DEBUG/INFO.
QUIET_LOGGERS = (
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "snowflake.connector",
    "httpx",
    "httpcore",
    "aws_xray_sdk",
    # Powertools' resolver logs route arguments and raw paths at DEBUG.
    "aws_lambda_powertools.event_handler",
)


def scrub(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` without PHI keys at any depth (dicts, lists, tuples)."""
    if _depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: scrub(item, _depth + 1)
            for key, item in value.items()
            if not (isinstance(key, str) and key.lower() in PHI_KEYS)
        }
    if isinstance(value, list | tuple):
        return [scrub(item, _depth + 1) for item in value]
    return value


def safe_exception_text(exc_type: type[BaseException] | None, tb: TracebackType | None) -> str:
    """Traceback frames plus the exception type; the message is left out on purpose."""
    frames = "".join(traceback.format_tb(tb)) if tb is not None else ""
    name = exc_type.__name__ if exc_type is not None else "Exception"
    return f"Traceback (most recent call last):\n{frames}{name} (message withheld)"


class PhiSafeFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: LogRecord) -> str:
        cleaned: Any = scrub(log)
        return super().serialize(cleaned)

    def formatException(  # noqa: N802 - logging.Formatter API
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        return safe_exception_text(ei[0], ei[2])


def quiet_third_party_loggers() -> None:
    for name in QUIET_LOGGERS:
        lib = logging.getLogger(name)
        if lib.level == logging.NOTSET or lib.level < logging.WARNING:
            lib.setLevel(logging.WARNING)


def service_name() -> str:
    return env_str(os.environ, SERVICE_ENV, DEFAULT_SERVICE)


_logger: Logger | None = None
_metrics: Metrics | None = None
_tracer: Tracer | None = None


def get_logger() -> Logger:
    global _logger
    if _logger is None:
        quiet_third_party_loggers()
        _logger = Logger(
            service=service_name(),
            logger_formatter=PhiSafeFormatter(serialize_stacktrace=False),
        )
    return _logger


def get_metrics(service: str | None = None) -> Metrics:
    """The container's Metrics. ``service`` (the logical SPCS service name) becomes the default
    ``service`` dimension; Powertools would otherwise use POWERTOOLS_SERVICE_NAME."""
    global _metrics
    if _metrics is None:
        namespace = env_str(os.environ, NAMESPACE_ENV, DEFAULT_NAMESPACE)
        _metrics = Metrics(namespace=namespace)
    current = _metrics.provider.default_dimensions.get("service")
    if service and current != service:
        if current is not None:  # another service in this process (tests): start clean
            _metrics.clear_default_dimensions()
            _metrics.clear_metrics()
        _metrics.set_default_dimensions(service=service)
    return _metrics


# Request parameters X-Ray's botocore patch would record that can carry PHI: S3 object keys
# and key prefixes (patient or accession numbers in paths), version ids, copy sources.
XRAY_REDACTED_PARAMETERS = frozenset({"Key", "VersionId", "Prefix", "CopySource"})


def redact_xray_aws_parameters() -> None:
    """Take ``XRAY_REDACTED_PARAMETERS`` off the list of request parameters aws_xray_sdk's
    botocore patch copies into subsegments (every service). Idempotent; the SDK reads the list
    on every call, so this holds for clients created before it too."""
    try:
        from aws_xray_sdk.ext import boto_utils
    except ImportError:  # tracing not installed: nothing records parameters
        return
    for service in boto_utils.whitelist.get("services", {}).values():
        for operation in service.get("operations", {}).values():
            for key in ("request_parameters", "response_parameters"):
                names = operation.get(key)
                if names:
                    operation[key] = [n for n in names if n not in XRAY_REDACTED_PARAMETERS]
            for key in ("request_descriptors", "response_descriptors"):
                descriptors = operation.get(key)
                if descriptors:
                    for name in XRAY_REDACTED_PARAMETERS & set(descriptors):
                        del descriptors[name]


def get_tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        # Read by Powertools when a decorator does not say; ours always say False as well.
        os.environ.setdefault("POWERTOOLS_TRACER_CAPTURE_RESPONSE", "false")
        os.environ.setdefault("POWERTOOLS_TRACER_CAPTURE_ERROR", "false")
        redact_xray_aws_parameters()
        _tracer = Tracer(service=service_name(), patch_modules=("botocore", "httpx"))
    return _tracer


def emit_outcome_counts(service: str, counts: Mapping[str, int]) -> None:
    """One EMF blob per outcome: metric ``Records`` with dimensions service and outcome."""
    namespace = env_str(os.environ, NAMESPACE_ENV, DEFAULT_NAMESPACE)
    for outcome, count in sorted(counts.items()):
        if count <= 0:
            continue
        with single_metric(
            name="Records",
            unit=MetricUnit.Count,
            value=count,
            namespace=namespace,
            default_dimensions={"service": service},
        ) as metric:
            metric.add_dimension(name="outcome", value=outcome)
