"""Service-state store: one DynamoDB item per managed service (table from ``SERVICE_STATE_TABLE``).

Each item is a ``service_record.ServiceRecord``. ``ServiceStateStore`` implements the control
plane's ``control.ports.StateStore`` (``control.memory.MemoryStateStore`` is the in-memory one,
held to the same behaviour by tests/control/test_ctl_ports_contract.py).

Table: partition key ``service`` (S) = the logical name (``ServiceConfig.name``), no sort key.
Items hold names, statuses, timestamps (epoch seconds, millisecond precision), counters and
lease owner ids, never PHI. Every write is a single ``UpdateItem``; the ones that must not race
are conditional, so DynamoDB's per-item atomicity gives the guarantees:

- ``record_activity`` only moves ``last_activity`` forward (cheap, idempotent);
- ``try_acquire_lease`` mirrors ``service_record.can_take_lease``: no lease, an expired one, or the
  same owner renewing. Of concurrent callers exactly one wins;
- ``record_resume`` / ``record_suspend`` ``ADD`` to totals and to per-UTC-day counters, rolling
  the day over with a conditional write (no read-modify-write race);
- ``begin_on_demand`` / ``end_on_demand`` keep an in-flight counter with a safeguard expiry
  (``now + ttl``, refreshed by every begin). The policy ignores the counter once the expiry has
  passed, and the next begin after it restarts the count at 1, so a caller that crashed between
  begin and end blocks suspension for at most ``ttl``. Choose ``ttl`` longer than the longest
  on-demand call (the API function's timeout): then an expired counter can only hold leaked
  counts, and resetting it loses no live call.
- ``record_scale`` / ``set_manual_range`` / ``record_backlog`` keep the scaling policy's last
  decision, an operator's range and the backlog sample (plain sets: one round writes them);
- ``save_idle_model`` replaces the adaptive policy's learned record (``adaptive.encode``: gap
  counts, resume durations, the plan: times only, a few KB at most) only if the item still holds
  what the caller read (optimistic concurrency: the loser re-reads, or drops one observation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from spcs_gateway import adaptive
from spcs_gateway.aws_errors import has_aws_code
from spcs_gateway.service_record import ServiceRecord, counter_day
from spcs_gateway.settings import env_str
from spcs_gateway.status import Observation, ServiceStatus

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

SERVICE_STATE_TABLE_ENV = "SERVICE_STATE_TABLE"
KEY_ATTRIBUTE = "service"
# Lease taken by ensure_ready / reconcile; long enough to cover a resume's readiness polling
# inside one invocation, short enough that a crashed holder is taken over within minutes.
DEFAULT_LEASE_TTL = timedelta(minutes=5)
DEFAULT_ON_DEMAND_TTL = timedelta(minutes=15)  # >= the API function's maximum timeout

_CONDITION_FAILED = "ConditionalCheckFailedException"
_NAME_RE = re.compile(r"#(\w+)")
_BATCH_GET_LIMIT = 100
_ATTEMPTS = 4  # for the two-branch conditional writes (day rollover, on-demand reset)


def _ts(value: datetime) -> AttributeValueTypeDef:
    return {"N": f"{value.timestamp():.3f}"}


def _int(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


def _str(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _read_ts(item: Mapping[str, Any], attr: str) -> datetime | None:
    value = item.get(attr)
    return datetime.fromtimestamp(float(value["N"]), tz=UTC) if value and "N" in value else None


def _read_int(item: Mapping[str, Any], attr: str) -> int:
    value = item.get(attr)
    return int(float(value["N"])) if value and "N" in value else 0


def _read_str(item: Mapping[str, Any], attr: str) -> str | None:
    value = item.get(attr)
    return str(value["S"]) if value and "S" in value else None


def _read_num(item: Mapping[str, Any], attr: str) -> float | None:
    value = item.get(attr)
    return float(value["N"]) if value and "N" in value else None


def _read_opt_int(item: Mapping[str, Any], attr: str) -> int | None:
    number = _read_num(item, attr)
    return None if number is None else int(number)


def _read_bool(item: Mapping[str, Any], attr: str) -> bool:
    value = item.get(attr)
    return bool(value.get("BOOL", False)) if value else False


def state_from_item(name: str, item: Mapping[str, Any] | None) -> ServiceRecord:
    """A DynamoDB item (low-level attribute-value form) as a ServiceRecord; None -> empty."""
    if not item:
        return ServiceRecord(name=name)
    return ServiceRecord(
        name=name,
        status=ServiceStatus.parse(_read_str(item, "status")),
        ready=_read_bool(item, "ready"),
        observed_at=_read_ts(item, "observed_at"),
        last_transition_at=_read_ts(item, "last_transition_at"),
        last_activity=_read_ts(item, "last_activity"),
        resumed_at=_read_ts(item, "resumed_at"),
        suspended_at=_read_ts(item, "suspended_at"),
        lease_owner=_read_str(item, "lease_owner"),
        lease_expires_at=_read_ts(item, "lease_expires_at"),
        mappings_paused=_read_bool(item, "mappings_paused"),
        on_demand_in_flight=_read_int(item, "on_demand"),
        on_demand_expires_at=_read_ts(item, "on_demand_expires_at"),
        resumes=_read_int(item, "resumes"),
        suspends=_read_int(item, "suspends"),
        counter_day=_read_str(item, "counter_day"),
        resumes_today=_read_int(item, "resumes_today"),
        suspends_today=_read_int(item, "suspends_today"),
        idle_model=adaptive.decode(_read_str(item, "idle_model")),
        instances=_read_opt_int(item, "instances"),
        scaled_at=_read_ts(item, "scaled_at"),
        scale_reason=_read_str(item, "scale_reason"),
        manual_min=_read_opt_int(item, "manual_min"),
        manual_max=_read_opt_int(item, "manual_max"),
        rate=_read_num(item, "rate"),
        backlog=_read_opt_int(item, "backlog"),
        backlog_at=_read_ts(item, "backlog_at"),
    )


class ServiceStateStore:
    """DynamoDB adapter for the per-service state items (low-level client)."""

    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = dynamodb_client

    @classmethod
    def from_env(
        cls,
        dynamodb_client: DynamoDBClient | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ServiceStateStore:
        env = os.environ if environ is None else environ
        table = env_str(env, SERVICE_STATE_TABLE_ENV)
        if not table:
            raise ValueError(f"{SERVICE_STATE_TABLE_ENV} is not set")
        if dynamodb_client is None:
            import boto3

            dynamodb_client = boto3.client("dynamodb")
        return cls(table, dynamodb_client)

    @property
    def table_name(self) -> str:
        return self._table

    # -- reads ----------------------------------------------------------------------------

    def get(self, name: str) -> ServiceRecord:
        response = self._client.get_item(
            TableName=self._table, Key={KEY_ATTRIBUTE: _str(name)}, ConsistentRead=True
        )
        return state_from_item(name, response.get("Item"))

    def get_all(self, names: Iterable[str]) -> dict[str, ServiceRecord]:
        """States by name, in one BatchGetItem per 100 names (missing items -> empty states)."""
        wanted = list(dict.fromkeys(names))
        items: dict[str, Mapping[str, Any]] = {}
        for offset in range(0, len(wanted), _BATCH_GET_LIMIT):
            chunk = wanted[offset : offset + _BATCH_GET_LIMIT]
            keys: list[dict[str, AttributeValueTypeDef]] = [{KEY_ATTRIBUTE: _str(n)} for n in chunk]
            for _ in range(_ATTEMPTS):
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    found = _read_str(item, KEY_ATTRIBUTE)
                    if found is not None:
                        items[found] = item
                unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
                keys = list(unprocessed["Keys"]) if unprocessed else []
                if not keys:
                    break
            for leftover in keys:  # still throttled after retries: fall back to single reads
                name = _read_str(leftover, KEY_ATTRIBUTE)
                if name is not None:
                    items[name] = self._get_item(name)
        return {n: state_from_item(n, items.get(n)) for n in wanted}

    def _get_item(self, name: str) -> Mapping[str, Any]:
        response = self._client.get_item(
            TableName=self._table, Key={KEY_ATTRIBUTE: _str(name)}, ConsistentRead=True
        )
        return response.get("Item", {})

    # -- writes ---------------------------------------------------------------------------

    def _update(
        self,
        name: str,
        expression: str,
        values: dict[str, AttributeValueTypeDef],
        condition: str | None = None,
    ) -> bool:
        """One UpdateItem; False when the condition failed. Attribute names are written as
        ``#attr`` everywhere (several, like ``status``, are DynamoDB reserved words)."""
        text = expression + " " + (condition or "")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {KEY_ATTRIBUTE: _str(name)},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {f"#{a}": a for a in set(_NAME_RE.findall(text))},
        }
        if values:  # DynamoDB refuses an empty map (a plain REMOVE has no values)
            kwargs["ExpressionAttributeValues"] = values
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            self._client.update_item(**kwargs)
        except ClientError as exc:
            if has_aws_code(exc, _CONDITION_FAILED):
                return False
            raise
        return True

    def record_activity(self, name: str, now: datetime) -> bool:
        """Move last_activity forward to ``now``; False when it already was at or past it."""
        return self._update(
            name,
            "SET #last_activity = :now",
            {":now": _ts(now)},
            "attribute_not_exists(#last_activity) OR #last_activity < :now",
        )

    def try_acquire_lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Take (or renew) the resume lease; exactly one of concurrent callers gets True."""
        return self._update(
            name,
            "SET #lease_owner = :owner, #lease_expires_at = :expires",
            {":owner": _str(owner), ":expires": _ts(now + ttl), ":now": _ts(now)},
            "attribute_not_exists(#lease_owner) OR attribute_not_exists(#lease_expires_at)"
            " OR #lease_expires_at <= :now OR #lease_owner = :owner",
        )

    def release_lease(self, name: str, owner: str) -> bool:
        """Drop the lease if ``owner`` still holds it (a taken-over lease is left alone)."""
        return self._update(
            name,
            "REMOVE #lease_owner, #lease_expires_at",
            {":owner": _str(owner)},
            "#lease_owner = :owner",
        )

    def record_observation(self, name: str, observation: Observation, now: datetime) -> bool:
        """Store the observed status; True when it differs from the recorded one (a transition,
        which also sets last_transition_at; the first observation of a service counts)."""
        status = _str(ServiceStatus.parse(observation.status).value)
        ready: AttributeValueTypeDef = {"BOOL": observation.ready}
        for _ in range(_ATTEMPTS):
            if self._update(
                name,
                "SET #observed_at = :now, #ready = :ready",
                {":now": _ts(now), ":ready": ready, ":status": status},
                "#status = :status",
            ):
                return False
            if self._update(
                name,
                "SET #status = :status, #ready = :ready, #observed_at = :now,"
                " #last_transition_at = :now",
                {":now": _ts(now), ":ready": ready, ":status": status},
                "attribute_not_exists(#status) OR #status <> :status",
            ):
                return True
        raise RuntimeError("record_observation: conditional writes kept racing")

    def record_resume(self, name: str, now: datetime) -> None:
        """Our RESUME was issued: resumed_at = now, resumes += 1 (total and today)."""
        self._count(name, now, "resumed_at", "resumes")

    def record_suspend(self, name: str, now: datetime) -> None:
        """Our SUSPEND was issued: suspended_at = now, suspends += 1 (total and today)."""
        self._count(name, now, "suspended_at", "suspends")

    def _count(self, name: str, now: datetime, stamp: str, counter: str) -> None:
        other = "suspends" if counter == "resumes" else "resumes"
        values: dict[str, AttributeValueTypeDef] = {
            ":now": _ts(now),
            ":day": _str(counter_day(now)),
            ":one": _int(1),
        }
        for _ in range(_ATTEMPTS):
            # Same (or, with a skewed clock, a later) day: plain atomic increments.
            if self._update(
                name,
                f"SET #{stamp} = :now ADD #{counter} :one, #{counter}_today :one",
                values,
                "#counter_day >= :day",
            ):
                return
            # First count of a new day: restart both daily counters.
            if self._update(
                name,
                f"SET #{stamp} = :now, #counter_day = :day, #{counter}_today = :one,"
                f" #{other}_today = :zero ADD #{counter} :one",
                {**values, ":zero": _int(0)},
                "attribute_not_exists(#counter_day) OR #counter_day < :day",
            ):
                return
        raise RuntimeError("record_resume/suspend: conditional writes kept racing")

    def set_mappings_paused(self, name: str, paused: bool) -> None:
        """ensure_ready sets this before pausing the event source mappings and clears it after
        re-enabling them, so a crash in between is visible to the next reconcile."""
        self._update(name, "SET #mappings_paused = :paused", {":paused": {"BOOL": paused}})

    def begin_on_demand(
        self, name: str, now: datetime, ttl: timedelta = DEFAULT_ON_DEMAND_TTL
    ) -> None:
        """An on-demand (API) call to the service starts: in-flight += 1, expiry = now + ttl."""
        values: dict[str, AttributeValueTypeDef] = {
            ":now": _ts(now),
            ":expires": _ts(now + ttl),
            ":one": _int(1),
        }
        for _ in range(_ATTEMPTS):
            if self._update(
                name,
                "SET #on_demand_expires_at = :expires ADD #on_demand :one",
                values,
                "#on_demand_expires_at > :now",
            ):
                return
            # No live counter (never set, or expired: only leaked counts left): restart at 1.
            if self._update(
                name,
                "SET #on_demand = :one, #on_demand_expires_at = :expires",
                values,
                "attribute_not_exists(#on_demand_expires_at) OR #on_demand_expires_at <= :now",
            ):
                return
        raise RuntimeError("begin_on_demand: conditional writes kept racing")

    def save_idle_model(
        self, name: str, model: adaptive.IdleModel, previous: adaptive.IdleModel | None
    ) -> bool:
        """Store ``model`` if the item still holds ``previous``; False when someone else wrote
        in between."""
        if previous is None:
            condition = "attribute_not_exists(#idle_model)"
            values: dict[str, AttributeValueTypeDef] = {":m": _str(adaptive.encode(model))}
        else:
            condition = "#idle_model = :prev"
            values = {
                ":m": _str(adaptive.encode(model)),
                ":prev": _str(adaptive.encode(previous)),
            }
        return self._update(name, "SET #idle_model = :m", values, condition)

    def end_on_demand(self, name: str) -> bool:
        """The call ended: in-flight -= 1, never below zero (False if it was already zero)."""
        return self._update(
            name,
            "ADD #on_demand :minus_one",
            {":minus_one": _int(-1), ":zero": _int(0)},
            "#on_demand > :zero",
        )

    # -- scaling (scaling.py; plain last-writer-wins sets: one control round writes them) ---

    def record_scale(self, name: str, instances: int, reason: str, now: datetime) -> None:
        """The instance count was set (MIN = MAX = ``instances``) at ``now`` for ``reason``."""
        self._update(
            name,
            "SET #instances = :n, #scaled_at = :now, #scale_reason = :reason",
            {":n": _int(instances), ":now": _ts(now), ":reason": _str(reason)},
        )

    def set_manual_range(self, name: str, low: int | None, high: int | None) -> None:
        """An operator's range (``spcs-gateway scale``); None and None: back to the registry's."""
        if low is None or high is None:
            self._update(name, "REMOVE #manual_min, #manual_max", {})
            return
        self._update(
            name,
            "SET #manual_min = :low, #manual_max = :high",
            {":low": _int(low), ":high": _int(high)},
        )

    def record_backlog(self, name: str, backlog: int, rate: float | None, now: datetime) -> None:
        """The backlog a round saw, and the rate learned from it (None: not learned yet)."""
        values: dict[str, AttributeValueTypeDef] = {":b": _int(backlog), ":now": _ts(now)}
        expression = "SET #backlog = :b, #backlog_at = :now"
        if rate is not None:
            expression += ", #rate = :rate"
            values[":rate"] = {"N": f"{rate:.6f}"}
        self._update(name, expression, values)
