"""Emulator-side Snowflake auth: key-pair JWT checks, PATs, ingress tokens, REST bearer.

Rules (docs/SNOWFLAKE_FACTS.md; Snowflake docs "Key-pair authentication"): RS256 only;
``iss = ACCOUNT.USER.SHA256:<fp>`` and ``sub = ACCOUNT.USER`` with the account upper-cased and
cut at the first ``.`` and the user upper-cased; ``<fp>`` names a registered public key
(base64 of sha256 of its DER SubjectPublicKeyInfo); ``exp`` at most one hour ahead; ``iat``
not in the future. Time comes from the injected clock (PyJWT's own time checks are off).

Issued ingress tokens are RS256 JWTs signed by a key that lives only in this process, bound to
one ingress ``host:port`` and valid for ``token_lifetime`` seconds: the gateway's exp-based
cache is exercised, and a restart invalidates them (as a 401, like a real expiry). They carry
the role of the exchange's scope (``session:role:<ROLE>``), which the ingress checks against
the endpoint's service role; a PAT carries its role restriction, if it was given one.

Error messages never contain a token, an assertion or a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .clock import Clock

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_JWT_LIFETIME = 3_600
DEFAULT_SKEW = 60.0
DEFAULT_TOKEN_LIFETIME = 3_600
_ISSUER = "spcs-local-emulator"
_SNOWFLAKE_TOKEN = re.compile(r'^\s*Snowflake\s+Token\s*=\s*"([^"\s]+)"\s*$', re.IGNORECASE)
_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)
_ROLE_PREFIX = "session:role:"


class AuthError(Exception):
    """Refused credentials. ``status`` is 400 or 401; ``message`` is safe to return and log."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message}


def _invalid(message: str) -> AuthError:
    return AuthError(401, "invalid_token", message)


# Repeats spcs_gateway/auth.py on purpose: the verifier shares no code with what it checks.
def public_key_fingerprint(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> str:
    """``SHA256:`` + base64(sha256(DER SubjectPublicKeyInfo)), as Snowflake shows it."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def jwt_account_name(account: str) -> str:
    """Account part of ``iss``/``sub``: upper-cased, cut at the first ``.``."""
    cut = "-" if ".global" in account.lower() else "."
    index = account.find(cut)
    return (account[:index] if index > 0 else account).upper()


def normalize_host(value: str) -> str:
    """``host:port`` as used for scopes (tolerates a scheme or a trailing slash)."""
    host = value.strip().lower()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    return host.rstrip("/")


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("public key is not an RSA key")
    return key


@dataclass(frozen=True)
class IngressCaller:
    """Who called an ingress endpoint: the user and the role the token carries (None: the
    user's default role applies)."""

    user: str
    role: str | None
    credential: str  # "pat" | "token"


@dataclass(frozen=True)
class Scope:
    host: str
    role: str | None


def parse_scope(scope: str) -> Scope:
    """``[session:role:<ROLE> ]<host>`` -> Scope. Raises AuthError(400) when malformed."""
    role: str | None = None
    hosts: list[str] = []
    for part in scope.split():
        if part.lower().startswith(_ROLE_PREFIX):
            role = part[len(_ROLE_PREFIX) :] or None
        else:
            hosts.append(normalize_host(part))
    if len(hosts) != 1 or not hosts[0]:
        raise AuthError(400, "invalid_scope", "scope must name exactly one ingress host")
    return Scope(host=hosts[0], role=role)


class EmulatorAuth:
    """Credential checks for one emulated account and its service user (thread-safe)."""

    def __init__(
        self,
        account_name: str,
        user: str,
        public_keys: Iterable[rsa.RSAPublicKey],
        pats: Collection[str] | Mapping[str, str | None],
        clock: Clock,
        *,
        skew: float = DEFAULT_SKEW,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
    ) -> None:
        self.account = jwt_account_name(account_name)
        self.user = user.upper()
        self._keys = {public_key_fingerprint(k): k for k in public_keys}
        # PAT -> its role restriction (None: the user's default role applies).
        restrictions: Mapping[str, str | None] = (
            pats if isinstance(pats, Mapping) else dict.fromkeys(pats)
        )
        self._pats = tuple((p.encode("utf-8"), r) for p, r in restrictions.items() if p)
        self._clock = clock
        self._skew = skew
        self._token_lifetime = token_lifetime
        # Signs the ingress tokens this process issues; never leaves the process.
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._verify_key = self._signing_key.public_key()

    @property
    def fingerprints(self) -> list[str]:
        return sorted(self._keys)

    # -- key-pair JWT -------------------------------------------------------------------------

    def verify_jwt(self, assertion: str) -> str:
        """Check a key-pair JWT with Snowflake's rules; answer the user name."""
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid("JWT token is malformed") from None
        if header.get("alg") != "RS256":
            raise _invalid("JWT must be signed with RS256")
        iss, sub = claims.get("iss"), claims.get("sub")
        if not isinstance(iss, str) or not isinstance(sub, str):
            raise _invalid("JWT needs iss and sub")
        qualified, sep, fingerprint = iss.rpartition(".SHA256:")
        if not sep:
            raise _invalid("JWT iss must be ACCOUNT.USER.SHA256:<fingerprint>")
        if qualified != sub:
            raise _invalid("JWT sub must equal the ACCOUNT.USER part of iss")
        account, _, user = sub.partition(".")
        if account != self.account:
            raise _invalid("JWT account does not match this account (upper-case, cut at '.')")
        if user != self.user:
            raise _invalid("JWT user is not a user of this account (upper-case)")
        key = self._keys.get("SHA256:" + fingerprint)
        if key is None:
            raise _invalid("JWT public key fingerprint does not match a registered key")
        try:
            jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            raise _invalid("JWT signature is invalid") from None
        self._check_times(claims)
        return user

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.now()
        exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
        if exp is None or iat is None:
            raise _invalid("JWT needs numeric exp and iat")
        if exp <= now - self._skew:
            raise _invalid("JWT has expired")
        if iat > now + self._skew:
            raise _invalid("JWT iat is in the future")
        limit = MAX_JWT_LIFETIME + self._skew
        if exp - now > limit or exp - iat > limit:
            raise _invalid("JWT exp is more than one hour ahead")

    # -- PAT ----------------------------------------------------------------------------------

    def is_pat(self, token: str) -> bool:
        return self._match_pat(token) is not None

    def _match_pat(self, token: str) -> tuple[str | None] | None:
        """``(role restriction,)`` of the matching PAT, else None."""
        candidate = token.encode("utf-8")
        found: tuple[str | None] | None = None
        for pat, role in self._pats:  # compare against every PAT: timing tells nothing
            if hmac.compare_digest(candidate, pat):
                found = (role,)
        return found

    # -- /oauth/token -------------------------------------------------------------------------

    def exchange(self, form: Mapping[str, str], ingress_hosts: Collection[str]) -> str:
        """Handle an ``/oauth/token`` form; answer the issued ingress token."""
        if form.get("grant_type") != JWT_BEARER_GRANT:
            raise AuthError(400, "unsupported_grant_type", f"grant_type must be {JWT_BEARER_GRANT}")
        assertion = form.get("assertion")
        if not assertion:
            raise AuthError(400, "invalid_request", "assertion is required")
        scope_text = form.get("scope")
        if not scope_text:
            raise AuthError(400, "invalid_scope", "scope is required")
        scope = parse_scope(scope_text)
        user = self.verify_jwt(assertion)
        if scope.host not in {normalize_host(h) for h in ingress_hosts}:
            raise AuthError(401, "invalid_scope", "scope names no ingress endpoint of this account")
        return self.issue_token(user, scope)

    def issue_token(self, user: str, scope: Scope) -> str:
        now = int(self._clock.now())
        claims = {
            "iss": _ISSUER,
            "sub": user,
            "scope": scope.host,
            "role": scope.role,
            "iat": now,
            "exp": now + self._token_lifetime,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._signing_key, algorithm="RS256")

    # -- ingress ------------------------------------------------------------------------------

    def verify_ingress(self, authorization: str | None, host: str) -> str:
        """Check ``Authorization: Snowflake Token="..."`` for the ingress endpoint ``host``."""
        return self.verify_ingress_caller(authorization, host).user

    def verify_ingress_caller(self, authorization: str | None, host: str) -> IngressCaller:
        """Like ``verify_ingress``, answering the user and the role the token carries."""
        if not authorization:
            raise AuthError(401, "missing_token", "Authorization header is required")
        match = _SNOWFLAKE_TOKEN.match(authorization)
        if match is None:
            raise AuthError(401, "invalid_token", 'Authorization must be Snowflake Token="..."')
        token = match.group(1)
        pat = self._match_pat(token)
        if pat is not None:
            return IngressCaller(self.user, pat[0] or None, "pat")
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=["RS256"],
                issuer=_ISSUER,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            raise _invalid("token is not a registered PAT or an issued ingress token") from None
        exp = _number(claims.get("exp"))
        if exp is None or exp <= self._clock.now():
            raise _invalid("ingress token has expired")
        if claims.get("scope") != normalize_host(host):
            raise _invalid("ingress token was issued for another endpoint")
        sub, role = claims.get("sub"), claims.get("role")
        return IngressCaller(
            sub if isinstance(sub, str) else self.user,
            role if isinstance(role, str) and role else None,
            "token",
        )

    # -- connector login ----------------------------------------------------------------------

    def verify_login(
        self, authenticator: str | None, login_name: str | None, account: str | None, token: str
    ) -> str:
        """Connector login: SNOWFLAKE_JWT or PROGRAMMATIC_ACCESS_TOKEN; answers the user."""
        kind = (authenticator or "").upper()
        if account and jwt_account_name(account) != self.account:
            raise _invalid("unknown account")
        if login_name and login_name.upper() != self.user:
            raise _invalid("unknown user")
        if kind == "SNOWFLAKE_JWT":
            return self.verify_jwt(token)
        if kind == "PROGRAMMATIC_ACCESS_TOKEN":
            if token and self.is_pat(token):
                return self.user
            raise _invalid("programmatic access token is not valid")
        raise AuthError(401, "unsupported_authenticator", "use SNOWFLAKE_JWT or a PAT")

    # -- REST API (Cortex Search) -------------------------------------------------------------

    def verify_bearer(self, authorization: str | None, token_type: str | None) -> str:
        """``Authorization: Bearer <PAT>`` or ``Bearer <JWT>`` + ``...-Token-Type: KEYPAIR_JWT``."""
        if not authorization:
            raise AuthError(401, "missing_token", "Authorization header is required")
        match = _BEARER.match(authorization)
        if match is None:
            raise AuthError(401, "invalid_token", "Authorization must be Bearer <token>")
        token = match.group(1)
        if (token_type or "").upper() == "KEYPAIR_JWT":
            return self.verify_jwt(token)
        if self.is_pat(token):
            return self.user
        raise _invalid("bearer token is not a registered PAT (send KEYPAIR_JWT for a JWT)")


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
