"""The gateway's own Snowflake session (``sql.SnowflakeSql``, production wiring) against a
registry, for tests that run statements through the real connector on the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from spcs_gateway.auth import TokenProvider
from spcs_gateway.http import build_http_client
from spcs_gateway.registry import Registry
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.sql import SnowflakeSql, make_connect


@contextmanager
def gateway_sql(registry: Registry) -> Iterator[SnowflakeSql]:
    http = build_http_client()
    tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
    conn = SnowflakeSql(make_connect(tokens))
    try:
        yield conn
    finally:
        conn.close()
        http.close()
