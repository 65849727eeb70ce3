"""Error classes and stable reason codes. Pure: no I/O.

Every failure the gateway reports carries an ``ErrorCode``: a stable, PHI-free string that
goes into DLQ message attributes, metrics, logs and API error bodies. Messages built here
never contain input values, response bodies or exception text from below.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # Poison: never retried; the record goes to the DLQ.
    INVALID_JSON = "INVALID_JSON"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    INVALID_EVENT = "INVALID_EVENT"
    INVALID_IMAGE = "INVALID_IMAGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IMAGE_SOURCE_FORBIDDEN = "IMAGE_SOURCE_FORBIDDEN"
    IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"
    UNKNOWN_LABEL_SET = "UNKNOWN_LABEL_SET"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    MODEL_REJECTED_INPUT = "MODEL_REJECTED_INPUT"
    # Poison from EHR-native intake (spcs_gateway.ehr; docs/EHR_INTAKE.md).
    HL7_MALFORMED = "HL7_MALFORMED"  # not parseable ER7: MSH, delimiters, segments, ED data
    HL7_UNSUPPORTED_TYPE = "HL7_UNSUPPORTED_TYPE"  # not MDM^T02/T04 or ORU^R01; batches
    HL7_UNSUPPORTED_CHARSET = "HL7_UNSUPPORTED_CHARSET"  # MSH-18 names no decodable charset
    HL7_NO_TEXT = "HL7_NO_TEXT"  # a supported message without any note text
    FHIR_INVALID_RESOURCE = "FHIR_INVALID_RESOURCE"  # fails the strict FHIR R4 subset
    FHIR_UNSUPPORTED_RESOURCE = "FHIR_UNSUPPORTED_RESOURCE"  # another resourceType
    FHIR_NO_ATTACHMENT = "FHIR_NO_ATTACHMENT"  # no inline text/plain or text/html attachment
    DICOM_MALFORMED = "DICOM_MALFORMED"  # not a readable DICOM Part 10 file
    DICOM_NO_PIXEL_DATA = "DICOM_NO_PIXEL_DATA"
    DICOM_UNSUPPORTED_SYNTAX = "DICOM_UNSUPPORTED_SYNTAX"  # no permissively licensed decoder
    DICOM_UNSUPPORTED_IMAGE = "DICOM_UNSUPPORTED_IMAGE"  # photometric/bit layout not handled
    # Poison from reference events (spcs_gateway.reference; docs/REFERENCE_ROUTE.md).
    REFERENCE_NOT_ALLOWED = "REFERENCE_NOT_ALLOWED"  # table not on the registry's allow-list
    REFERENCE_NOT_FOUND = "REFERENCE_NOT_FOUND"  # no row with that key (and version)
    # Transient: retried with backoff, then SQS moves the message to the DLQ.
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    THROTTLED = "THROTTLED"
    SERVICE_ERROR = "SERVICE_ERROR"
    BAD_RESPONSE = "BAD_RESPONSE"
    RESULTS_WRITE_FAILED = "RESULTS_WRITE_FAILED"
    DEPENDENCY_ERROR = "DEPENDENCY_ERROR"
    # Configuration: retried (a fix may land) and alarmed.
    AUTH_FAILED = "AUTH_FAILED"
    ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
    CONFIGURATION_ERROR = "CONFIGURATION_ERROR"
    # The gateway's role lacks a grant it needs (OPERATE on a service, the endpoint's service
    # role, ...): Snowflake answers "does not exist or not authorized", 003001 or HTTP 403.
    PRIVILEGE_MISSING = "PRIVILEGE_MISSING"
    # The service refuses every row, including a known-good probe: the registry's signature
    # (columns, parameter columns) does not match the deployed model's.
    SIGNATURE_MISMATCH = "SIGNATURE_MISMATCH"


class FailureKind(StrEnum):
    POISON = "poison"  # this input is bad: DLQ now, do not retry
    TRANSIENT = "transient"  # retry with backoff
    UNAVAILABLE = "unavailable"  # service suspended/starting: ensure readiness, delay
    THROTTLED = "throttled"  # back off, honour Retry-After
    CONFIGURATION = "configuration"  # auth/URL wrong: retry slowly, alarm


POISON_CODES = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.UNKNOWN_SCHEMA,
        ErrorCode.INVALID_EVENT,
        ErrorCode.INVALID_IMAGE,
        ErrorCode.IMAGE_TOO_LARGE,
        ErrorCode.IMAGE_SOURCE_FORBIDDEN,
        ErrorCode.IMAGE_NOT_FOUND,
        ErrorCode.UNKNOWN_LABEL_SET,
        ErrorCode.REQUEST_TOO_LARGE,
        ErrorCode.MODEL_REJECTED_INPUT,
        ErrorCode.HL7_MALFORMED,
        ErrorCode.HL7_UNSUPPORTED_TYPE,
        ErrorCode.HL7_UNSUPPORTED_CHARSET,
        ErrorCode.HL7_NO_TEXT,
        ErrorCode.FHIR_INVALID_RESOURCE,
        ErrorCode.FHIR_UNSUPPORTED_RESOURCE,
        ErrorCode.FHIR_NO_ATTACHMENT,
        ErrorCode.DICOM_MALFORMED,
        ErrorCode.DICOM_NO_PIXEL_DATA,
        ErrorCode.DICOM_UNSUPPORTED_SYNTAX,
        ErrorCode.DICOM_UNSUPPORTED_IMAGE,
        ErrorCode.REFERENCE_NOT_ALLOWED,
        ErrorCode.REFERENCE_NOT_FOUND,
    }
)


class GatewayError(Exception):
    """Base class. ``str(err)`` is safe to log: code plus a fixed, PHI-free detail."""

    kind: FailureKind = FailureKind.TRANSIENT

    def __init__(
        self,
        code: ErrorCode,
        detail: str = "",
        *,
        status: int | None = None,
        retry_after: float | None = None,
        errno: int | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.errno = errno  # Snowflake's error number of the statement that failed, if any
        super().__init__(f"{code}: {detail}" if detail else str(code))


class PoisonError(GatewayError):
    kind = FailureKind.POISON


class TransientError(GatewayError):
    kind = FailureKind.TRANSIENT


class ServiceUnavailableError(GatewayError):
    kind = FailureKind.UNAVAILABLE


class ThrottledError(GatewayError):
    kind = FailureKind.THROTTLED


class ConfigurationError(GatewayError):
    kind = FailureKind.CONFIGURATION


def classify_status(status: int) -> FailureKind | None:
    """Map an SPCS ingress HTTP status to a failure kind; ``None`` means success."""
    if 200 <= status < 300:
        return None
    if status in (400, 413, 422):
        return FailureKind.POISON
    if status in (401, 403, 404):
        return FailureKind.CONFIGURATION
    if status == 429:
        return FailureKind.THROTTLED
    if status in (502, 503, 504):
        return FailureKind.UNAVAILABLE
    return FailureKind.TRANSIENT


def error_for_status(status: int, *, retry_after: float | None = None) -> GatewayError:
    """The exception the SPCS client raises for a non-2xx answer (after 401 refresh handling)."""
    kind = classify_status(status)
    if kind is FailureKind.POISON:
        return PoisonError(ErrorCode.MODEL_REJECTED_INPUT, f"HTTP {status}", status=status)
    if kind is FailureKind.CONFIGURATION:
        code = {404: ErrorCode.ENDPOINT_NOT_FOUND, 403: ErrorCode.PRIVILEGE_MISSING}.get(
            status, ErrorCode.AUTH_FAILED
        )
        return ConfigurationError(code, f"HTTP {status}", status=status)
    if kind is FailureKind.THROTTLED:
        return ThrottledError(
            ErrorCode.THROTTLED, f"HTTP {status}", status=status, retry_after=retry_after
        )
    if kind is FailureKind.UNAVAILABLE:
        return ServiceUnavailableError(
            ErrorCode.SERVICE_UNAVAILABLE, f"HTTP {status}", status=status
        )
    return TransientError(ErrorCode.SERVICE_ERROR, f"HTTP {status}", status=status)
