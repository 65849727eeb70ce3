"""SPCS model-service request/response codec. Pure: no I/O.

Request (flat format): ``{"data": [[row_index, in_1, ..., in_n, param_1, ..., param_m], ...]}``:
every input column, then every parameter column, in signature order (the Model Registry's
ingress answers 400 to a row with fewer values). Parameter values are the same on every row.
Response: ``{"data": [[row_index, {"<out_col>": value, ...}], ...]}``. Bytes columns travel as
base64 (or hex) text, configurable per service because the server's expectation is not
documented.

Errors carry fixed texts only: never the body, a value or a decoder message.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from spcs_gateway.errors import ErrorCode, TransientError
from spcs_gateway.registry import ServiceConfig

ENVELOPE_PREFIX = b'{"data":['
ENVELOPE_SUFFIX = b"]}"
# Bytes the envelope adds to a request beyond its rows (use as ``overhead`` when batching).
ENVELOPE_OVERHEAD = len(ENVELOPE_PREFIX) + len(ENVELOPE_SUFFIX)
# Row indices are sized as if they had this many digits, so a row's size does not depend on
# where it lands in a request (indices are request-local, far below 10**10).
_INDEX_DIGITS = 10


def _dumps(value: Any) -> str:
    # ASCII output: lone surrogates (valid in JSON text, not in UTF-8) cannot break encoding.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _encode_value(service: ServiceConfig, value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if service.bytes_encoding == "hex":
            return raw.hex()
        return base64.b64encode(raw).decode("ascii")
    if isinstance(value, tuple):
        return [_encode_value(service, item) for item in value]
    return value


def _row_values(service: ServiceConfig, values: Sequence[Any]) -> list[Any]:
    if len(values) != len(service.columns):
        raise ValueError("row has a different number of values than the service's columns")
    params = [_encode_value(service, value) for _, value in service.param_columns]
    return [*(_encode_value(service, value) for value in values), *params]


def encode_request(service: ServiceConfig, rows: Sequence[tuple[int, Sequence[Any]]]) -> bytes:
    """The request body for ``rows`` (``(row_index, values)`` pairs)."""
    parts = [_dumps([index, *_row_values(service, values)]) for index, values in rows]
    return ENVELOPE_PREFIX + ",".join(parts).encode("ascii") + ENVELOPE_SUFFIX


def encoded_row_size(service: ServiceConfig, values: Sequence[Any]) -> int:
    """Upper bound of the bytes one row adds to a request body, separator included.

    ``len(encode_request(service, rows)) <= ENVELOPE_OVERHEAD + sum(encoded_row_size(...))``
    for any request-local row indices below 10**10. Raises ``ValueError``/``TypeError`` when
    the values cannot be encoded.
    """
    row = _dumps([0, *_row_values(service, values)])
    return len(row) + (_INDEX_DIGITS - 1) + 1  # widest index, plus the "," between rows


def _bad(detail: str) -> TransientError:
    return TransientError(ErrorCode.BAD_RESPONSE, detail)


def _output_value(service: ServiceConfig, columns: dict[str, Any]) -> Any:
    name = service.out_column
    if name in columns:
        value = columns[name]
    else:
        folded = {str(key).lower(): key for key in columns}
        if name.lower() not in folded:
            raise _bad("response row lacks the output column")
        value = columns[folded[name.lower()]]
    if isinstance(value, str):
        # Older token-classification models return the list as a JSON string.
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad("output column holds a string that is not JSON") from None
    if not isinstance(value, list):
        raise _bad("output column is not a list")
    return value


def decode_response(
    service: ServiceConfig, body: bytes, expected_rows: Sequence[int]
) -> dict[int, Any]:
    """Map each expected row index to its ``service.out_column`` value.

    Raises ``TransientError(BAD_RESPONSE)`` on a non-JSON body, a wrong shape, a missing,
    extra or duplicated row, or a missing output column.
    """
    try:
        document = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise _bad("response is not JSON") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        raise _bad("response has no 'data' list")
    expected = set(expected_rows)
    out: dict[int, Any] = {}
    for item in data:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)):
            raise _bad("response row is not [index, {columns}]")
        index = item[0]
        if isinstance(index, bool) or not isinstance(index, int):
            raise _bad("response row index is not an integer")
        if index not in expected:
            raise _bad("response holds a row that was not sent")
        if index in out:
            raise _bad("response holds a row twice")
        out[index] = _output_value(service, item[1])
    if len(out) != len(expected):
        raise _bad("response lacks rows that were sent")
    return out
