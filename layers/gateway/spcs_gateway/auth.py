"""Snowflake auth: key-pair JWT, PAT, ingress token exchange and its cache.

Facts (docs/SNOWFLAKE_FACTS.md; snowflake-ml-python ``_internal/utils/jwt_generator.py``;
Snowflake docs "Key-pair authentication" and "Tutorial 8: access a public endpoint
programmatically"):

* JWT: RS256, ``iss = ACCOUNT.USER.SHA256:<fp>``, ``sub = ACCOUNT.USER``, ``iat``, ``exp`` at most
  one hour after ``iat``; the account is upper-cased and cut at the first ``.`` (for a
  ``.global`` replication account: cut at the first ``-``); the user is upper-cased.
* Ingress token: ``POST <account>/oauth/token`` form-encoded with the jwt-bearer grant, the
  ingress host as scope (optionally role-prefixed) and the JWT as assertion; the answer is the
  token as plain text. PAT mode sends the PAT directly.

Messages raised from here never hold a token, a JWT or a response body.

PyJWT and cryptography are imported on first use (a PAT deployment never loads them; a key-pair
one loads them before the SnapStart snapshot). Tokens and the JWT are cached per process and
forgotten after a SnapStart restore (``snapshot.py``): a token minted before the snapshot would
be shared by every restored environment and carries an expiry judged on the snapshot's clock.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from spcs_gateway import snapshot
from spcs_gateway.errors import ConfigurationError, ErrorCode, TransientError
from spcs_gateway.registry import AuthMode, SnowflakeSettings
from spcs_gateway.secrets import Credential, CredentialSource

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_JWT_LIFETIME_S = 3_600
# Ingress tokens that are not JWTs carry no expiry we can read: re-exchange after this long
# (and on any 401 before that).
DEFAULT_OPAQUE_TOKEN_TTL_S = 50 * 60
# After Snowflake refuses the credential for a host (the token endpoint refuses the JWT, or the
# ingress refuses a freshly issued token or the PAT: bad key, wrong role, revoked PAT), tokens
# for that host are not asked for again for this long unless the credential changed (a rotated
# key or PAT is used at once): a misconfiguration costs one exchange per host per window, not
# one per request.
DEFAULT_AUTH_FAILURE_BACKOFF_S = 5.0
_EXCHANGE_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def public_key_fingerprint(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """``SHA256:`` + base64(sha256(DER SubjectPublicKeyInfo)), as Snowflake stores it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def jwt_account_name(account: str) -> str:
    """The account part of ``iss``/``sub`` (same rule as snowflake-ml-python's generator)."""
    cut = "-" if ".global" in account.lower() else "."
    index = account.find(cut)
    return (account[:index] if index > 0 else account).upper()


def make_keypair_jwt(
    account: str, user: str, key: rsa.RSAPrivateKey, *, now: float, lifetime_s: int
) -> str:
    if lifetime_s <= 0:
        raise ValueError("lifetime_s must be positive")
    import jwt

    qualified = f"{jwt_account_name(account)}.{user.upper()}"
    issued = int(now)
    claims = {
        "iss": f"{qualified}.{public_key_fingerprint(key)}",
        "sub": qualified,
        "iat": issued,
        "exp": issued + min(lifetime_s, MAX_JWT_LIFETIME_S),
    }
    return jwt.encode(claims, key, algorithm="RS256")


def warm_keypair_imports() -> None:
    """Import what key-pair auth needs (before a SnapStart snapshot: paid once, at publish)."""
    import jwt  # noqa: F401
    from cryptography.hazmat.primitives import serialization  # noqa: F401
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: F401


def snowflake_token_header(token: str) -> dict[str, str]:
    return {"Authorization": f'Snowflake Token="{token}"'}


@dataclass(frozen=True)
class _Cached:
    token: str
    refresh_at: float


@dataclass(frozen=True)
class _Refused:
    credential: object  # the private key object or the PAT that was refused
    until: float  # no new token with that credential before this time
    code: ErrorCode = ErrorCode.AUTH_FAILED  # what callers are told meanwhile


def _refresh_at(expires_at: float, now: float, margin: float) -> float:
    # Never spend more than half of a short lifetime waiting for the margin.
    return expires_at - min(margin, max(0.0, (expires_at - now) / 2))


class TokenProvider:
    """Tokens for the SPCS ingress and the account REST API, cached and thread-safe."""

    def __init__(
        self,
        settings: SnowflakeSettings,
        credentials: CredentialSource,
        http: httpx.Client,
        *,
        clock: Callable[[], float] = time.time,
        opaque_token_ttl_s: float = DEFAULT_OPAQUE_TOKEN_TTL_S,
        auth_failure_backoff_s: float = DEFAULT_AUTH_FAILURE_BACKOFF_S,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._http = http
        self._clock = clock
        self._opaque_ttl = opaque_token_ttl_s
        self._auth_backoff = auth_failure_backoff_s
        self._margin = float(settings.token_refresh_margin_seconds)
        self._lock = threading.Lock()  # guards the dicts and flags below (held briefly)
        self._host_locks: dict[str, threading.Lock] = {}
        self._ingress: dict[str, _Cached] = {}
        self._refused: dict[str, _Refused] = {}
        self._jwt_lock = threading.Lock()
        self._jwt: _Cached | None = None
        self._jwt_key: rsa.RSAPrivateKey | None = None
        self._force_credentials = False
        self._last_pat: str | None = None
        self.exchanges = 0  # token exchanges performed (for tests and metrics)
        if settings.auth is AuthMode.KEYPAIR:
            snapshot.before_snapshot(
                lambda _tokens: warm_keypair_imports(), name="auth.warm_imports", owner=self
            )
        snapshot.after_restore(self.forget_tokens, name="auth.forget_tokens")

    def forget_tokens(self) -> None:
        """Drop every cached token, the JWT and the refusal back-offs (after a SnapStart
        restore): the next call mints and exchanges anew. The credential itself is
        re-validated by ``CredentialSource`` (its own restore hook)."""
        with self._jwt_lock, self._lock:
            self._ingress.clear()
            self._refused.clear()
            self._jwt = None
            self._jwt_key = None
            self._last_pat = None

    @property
    def mode(self) -> AuthMode:
        return self._settings.auth

    # -- credentials ---------------------------------------------------------------------------

    def _credential(self) -> Credential:
        with self._lock:
            force, self._force_credentials = self._force_credentials, False
        return self._credentials.get(force=force)

    def _pat(self) -> str:
        cred = self._credential()
        if cred.token is None:
            raise ConfigurationError(ErrorCode.CONFIGURATION_ERROR, "no PAT in credential")
        with self._lock:
            self._last_pat = cred.token
        return cred.token

    def _private_key(self) -> rsa.RSAPrivateKey:
        cred = self._credential()
        if cred.private_key is None:
            raise ConfigurationError(ErrorCode.CONFIGURATION_ERROR, "no private key in credential")
        return cred.private_key

    def keypair_jwt(self) -> str:
        """The key-pair JWT, cached until ``token_refresh_margin`` before its ``exp``."""
        key = self._private_key()
        with self._jwt_lock:
            now = self._clock()
            cached = self._jwt
            if cached is not None and self._jwt_key is key and now < cached.refresh_at:
                return cached.token
            lifetime = self._settings.jwt_lifetime_seconds
            token = make_keypair_jwt(
                self._settings.account, self._settings.user, key, now=now, lifetime_s=lifetime
            )
            self._jwt = _Cached(token, _refresh_at(int(now) + lifetime, now, self._margin))
            self._jwt_key = key
            return token

    # -- ingress -------------------------------------------------------------------------------

    def ingress_token(self, scope_host: str) -> str:
        if self.mode is AuthMode.PAT:
            pat = self._pat()
            self._check_refused(scope_host, pat, self._clock())
            return pat
        with self._lock:
            cached = self._ingress.get(scope_host)
            host_lock = self._host_locks.setdefault(scope_host, threading.Lock())
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.token
        # One exchange per host at a time; callers queued behind it reuse its result.
        with host_lock:
            with self._lock:
                cached = self._ingress.get(scope_host)
            now = self._clock()
            if cached is not None and now < cached.refresh_at:
                return cached.token
            # Re-reads the secret once after a refusal, so a rotated key is tried at once.
            key = self._private_key()
            self._check_refused(scope_host, key, now)
            try:
                token = self._exchange(scope_host)
            except ConfigurationError as err:
                if err.code is ErrorCode.AUTH_FAILED:
                    with self._lock:
                        self._refused[scope_host] = _Refused(key, now + self._auth_backoff)
                raise
            entry = _Cached(token, self._token_refresh_at(token, now))
            with self._lock:
                self._ingress[scope_host] = entry
                self._refused.pop(scope_host, None)
                self.exchanges += 1
            return token

    def invalidate(self, scope_host: str, *, token: str | None = None) -> None:
        """Forget the token for ``scope_host`` (after a 401). With ``token``, only if it is still
        the cached one, so several requests failing with the same token cause one refresh."""
        with self._lock:
            if self.mode is AuthMode.PAT:
                if token is None or token == self._last_pat:
                    self._force_credentials = True  # pick up a rotated PAT
                return
            cached = self._ingress.get(scope_host)
            if cached is not None and (token is None or cached.token == token):
                del self._ingress[scope_host]

    def refused(self, scope_host: str, code: ErrorCode = ErrorCode.AUTH_FAILED) -> None:
        """The ingress refused a token that was just refreshed (or the PAT, re-read): back off
        for ``scope_host`` as after a refused exchange. ``code`` says why (``AUTH_FAILED`` for a
        401, ``PRIVILEGE_MISSING`` for a 403: the role lacks the endpoint's service role)."""
        with self._lock:
            if self.mode is AuthMode.PAT:
                credential: object = self._last_pat
            else:
                credential = self._jwt_key
                self._ingress.pop(scope_host, None)
            if credential is not None:
                until = self._clock() + self._auth_backoff
                self._refused[scope_host] = _Refused(credential, until, code)

    def _check_refused(self, scope_host: str, credential: object, now: float) -> None:
        with self._lock:
            refused = self._refused.get(scope_host)
        if refused is None or now >= refused.until:
            return
        same = refused.credential is credential or refused.credential == credential
        if same:
            raise ConfigurationError(refused.code, "credential refused recently (backing off)")

    def ingress_auth_header(self, scope_host: str) -> dict[str, str]:
        return snowflake_token_header(self.ingress_token(scope_host))

    def _token_refresh_at(self, token: str, now: float) -> float:
        import jwt

        try:
            claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
        except jwt.PyJWTError:
            return now + self._opaque_ttl
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            return _refresh_at(float(exp), now, self._margin)
        return now + self._opaque_ttl

    def _exchange(self, scope_host: str) -> str:
        role = self._settings.role
        scope = f"session:role:{role} {scope_host}" if role else scope_host
        form = {"grant_type": JWT_BEARER_GRANT, "scope": scope, "assertion": self.keypair_jwt()}
        try:
            response = self._http.post(
                self._settings.token_url, data=form, timeout=_EXCHANGE_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"token exchange failed ({type(exc).__name__})"
            ) from None
        status = response.status_code
        # 4xx (bad JWT, unknown user/key, scope not granted) will not heal by retrying soon;
        # 408/429 and 5xx might.
        if 400 <= status < 500 and status not in (408, 429):
            with self._lock:
                self._force_credentials = True  # the key may have been rotated
            raise ConfigurationError(
                ErrorCode.AUTH_FAILED, f"token exchange refused (HTTP {status})", status=status
            )
        if status != 200:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"token exchange failed (HTTP {status})", status=status
            )
        token = response.text.strip()
        if not token or any(ch.isspace() for ch in token):
            raise TransientError(ErrorCode.DEPENDENCY_ERROR, "token exchange returned no token")
        return token

    # -- account REST API and SQL connector ----------------------------------------------------

    def rest_auth_headers(self) -> dict[str, str]:
        """Headers for the account REST API (Cortex Search)."""
        if self.mode is AuthMode.PAT:
            return {"Authorization": f"Bearer {self._pat()}"}
        return {
            "Authorization": f"Bearer {self.keypair_jwt()}",
            "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
        }

    def connector_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``snowflake.connector.connect`` (connector 5.2 names)."""
        s = self._settings
        kwargs: dict[str, Any] = {"account": s.account, "user": s.user}
        optional = {
            "role": s.role,
            "warehouse": s.warehouse,
            "database": s.database,
            "schema": s.schema_name,
        }
        kwargs.update({name: value for name, value in optional.items() if value})
        if self.mode is AuthMode.PAT:
            kwargs.update(authenticator="PROGRAMMATIC_ACCESS_TOKEN", token=self._pat())
        else:
            from cryptography.hazmat.primitives import serialization

            der = self._private_key().private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            kwargs.update(authenticator="SNOWFLAKE_JWT", private_key=der)
        if s.host:
            kwargs.update(host=s.host, protocol=s.protocol)
        if s.port:
            kwargs["port"] = s.port
        return kwargs
