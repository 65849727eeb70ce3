"""Service functions: a model service's method called from SQL, ``DB.SCHEMA.SVC!PREDICT(...)``.

The SQL engine hands every statement to ``ServiceFunctions.prepare`` before it runs. Each call
found there is checked as a compilation step and rewritten into the SQLite user function
``SF_SERVICE_FN('<fqn>', args...)``, which runs per row:

1. the service must be visible to the session's role (else 002003) and the role must hold
   the endpoint's service role ``<svc>!ALL_ENDPOINTS_USAGE`` or own the service (else 003001):
   the same right the ingress asks for (which right Snowflake asks for here is unconfirmed);
2. the method must be the deployment's (case-insensitive), and the call must carry every
   input, then EVERY parameter, in signature order: any other count is a compilation error,
   as the ingress's flat rows are a 400 (strict parameter columns);
3. the lifecycle gate the ingress uses (``Account.ingress_gate``): a SUSPENDED service with
   AUTO_RESUME starts resuming; a service that is not RUNNING fails the statement with errno
   ``NOT_READY_ERRNO`` (what Snowflake answers then, or whether it waits, is unconfirmed);
4. per row, the arguments go through the ingress's own request parser (``parse_request``:
   dtype checks on the parameters) and the same backend runner as the ingress (bytes are
   handed over in the service's bytes encoding, as they would arrive over REST); the answer
   is an OBJECT keyed by the output column, as the REST answer's row. A row the ingress would
   answer 400 fails the statement with errno ``REJECTED_ERRNO`` (Snowflake's is unconfirmed).

Errors carry names (service, method, columns, parameters), never values (PHI).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from .backends import BadInput
from .ingress import BadRequestError, BytesEncoding, Runner, parse_request

if TYPE_CHECKING:
    from spcs_models.spec import ModelDeployment

    from .sqlengine import SessionInfo
    from .state import Account

SQLITE_NAME = "SF_SERVICE_FN"
NOT_READY_ERRNO = 90010
REJECTED_ERRNO = 100357


@dataclass(frozen=True)
class ServiceFunction:
    fqn: str
    deployment: ModelDeployment
    runner: Runner
    bytes_encoding: BytesEncoding

    @property
    def arity(self) -> int:
        signature = self.deployment.signature
        return len(signature.input_names) + len(signature.param_names)


class ServiceFunctions:
    """The model services callable from SQL, by fully qualified name."""

    def __init__(self, account: Account) -> None:
        self._account = account
        self._by_fqn: dict[str, ServiceFunction] = {}
        self.calls = 0  # rows run through a service function (tests)

    def register(
        self,
        fqn: str,
        deployment: ModelDeployment,
        runner: Runner,
        bytes_encoding: BytesEncoding = "base64",
    ) -> None:
        self._by_fqn[fqn] = ServiceFunction(fqn, deployment, runner, bytes_encoding)

    # -- compile step ------------------------------------------------------------------------
    def prepare(
        self,
        tree: exp.Expr,
        session: SessionInfo,
        resolve: Callable[[str, SessionInfo], str],
        sql_error: Callable[[int, str, str], Exception],
    ) -> None:
        """Check and rewrite every ``svc!method(...)`` of ``tree`` in place; gate each service
        once (AUTO_RESUME). ``resolve`` maps a service name to its fqn for the session (002003
        when it cannot see it); ``sql_error(code, sqlstate, message)`` builds the error."""
        gated: set[str] = set()
        for node in list(tree.find_all(exp.ModelAttribute)):
            name = node.this.sql(dialect="snowflake")
            call = node.expression
            if not isinstance(call, exp.Anonymous):
                raise sql_error(1003, "42000", "SQL compilation error:\nunsupported model call.")
            fqn = resolve(name, session)
            function = self._by_fqn.get(fqn)
            method = str(call.name).upper()
            display = f"{fqn}!{method[:64]}"
            if function is None or method != function.deployment.method.upper():
                raise sql_error(
                    2140, "42601", f"SQL compilation error:\nUnknown function {display}"
                )
            if not self._account.role_can_use_endpoint(session.role, fqn):
                raise sql_error(
                    3001,
                    "42501",
                    f"SQL access control error:\nInsufficient privileges to operate on service "
                    f"'{fqn.rsplit('.', 1)[-1]}'",
                )
            args = list(call.expressions)
            if len(args) != function.arity:
                signature = function.deployment.signature
                wanted = ", ".join([*signature.input_names, *signature.param_names])
                raise sql_error(
                    938,
                    "22023",
                    f"SQL compilation error:\ninvalid number of arguments for {display}: "
                    f"expected {function.arity} ({wanted}: the inputs, then every parameter "
                    f"in signature order), got {len(args)}",
                )
            if fqn not in gated:
                gated.add(fqn)
                decision = self._account.ingress_gate(fqn)
                if not decision.ready:
                    raise sql_error(
                        NOT_READY_ERRNO,
                        "57P03",
                        f"Service {fqn} is not ready (status {decision.status}); a call "
                        "resumes a suspended service when AUTO_RESUME is TRUE. Retry later.",
                    )
            node.replace(
                exp.Anonymous(this=SQLITE_NAME, expressions=[exp.Literal.string(fqn), *args])
            )

    # -- per row -----------------------------------------------------------------------------
    def call(self, fqn: str, *args: Any) -> str:
        """Run one row; the service's answer as JSON text (a VARIANT in the store). Raises
        ``BadRequestError`` / ``BadInput`` when the model refuses the row."""
        function = self._by_fqn[fqn]
        values = [_wire_value(v, function.bytes_encoding) for v in args]
        parsed = parse_request({"data": [[0, *values]]}, function.deployment.signature)
        outputs = function.runner(parsed)
        self.calls += 1
        out = function.deployment.signature.output_name
        return json.dumps({out: outputs[0]}, separators=(",", ":"), ensure_ascii=False)


def _wire_value(value: Any, encoding: BytesEncoding) -> Any:
    """A SQLite value as it would arrive in a REST row."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return raw.hex() if encoding == "hex" else base64.b64encode(raw).decode("ascii")
    return value


REFUSALS = (BadRequestError, BadInput)
