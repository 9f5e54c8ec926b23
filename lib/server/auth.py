"""OpenID Connect bearer-token authentication and role checks for the server.

Clients send ``Authorization: Bearer <access token>``, a JWT from the hospital's identity
provider (Keycloak, Entra ID, ...). :class:`TokenVerifier` checks it against the provider's
published keys (:class:`KeySet`); :class:`AuthMiddleware` wraps the ASGI app and lets a
request through only when its route is served (:mod:`lib.server.routes`: anything else is a
404) and the token's roles include the one the route requires.

With authentication off (one user on a laptop) every request is :data:`LOCAL_USER`, and only
requests that reach the server on a loopback address, not through a proxy, are answered.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import math
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio.to_thread
import jwt
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

#: Signature algorithms accepted in tokens: asymmetric only, so no shared secret can forge one.
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
#: Claims that must be JSON numbers when present (RFC 7519 NumericDate), never strings.
_NUMERIC_DATES = ("exp", "nbf", "iat")


class Role(StrEnum):
    """What a user may do; each role has every right of the roles listed before it."""

    CLINICIAN = "clinician"  # view studies, run inference, read and sign reports
    ANNOTATOR = "annotator"  # also submit labels, take the next study to annotate
    ADMIN = "ml_admin"  # also train, publish or roll back models, add or delete studies, bulk data, audit

    def includes(self, other: Role) -> bool:
        """True when this role has every right of ``other``."""
        ranks = list(Role)
        return ranks.index(self) >= ranks.index(other)


class AuthenticationError(Exception):
    """No valid token (HTTP 401). The message says why; it never contains the token."""


class MissingToken(AuthenticationError):
    """The request has no ``Authorization: Bearer`` header (HTTP 401)."""


class AccessDenied(Exception):
    """A valid token whose roles do not allow the request, or a request that authentication
    off does not allow (HTTP 403)."""


def loopback_only(host: str) -> bool:
    """True for a loopback host: ``localhost``, 127.0.0.0/8 or ::1 (brackets allowed)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AuthSettings:
    """How the server authenticates: ``mode`` "off" (every request is a local user with all
    roles) or "oidc" (bearer tokens from ``issuer`` for ``audience``). ``roles_claim`` is a
    dotted path into the token's claims ("realm_access.roles" for Keycloak realm roles);
    ``role_names`` are the provider's names for our roles. ``timeout_s`` bounds each socket
    operation with the provider; ``leeway_s`` is the clock skew allowed on exp/nbf/iat;
    ``max_token_lifetime_s`` is the longest validity a token may claim (exp - iat, and exp
    from now); ``key_cooldown_s`` is the least time between two key downloads, whatever
    their outcome."""

    mode: Literal["oidc", "off"] = "off"
    issuer: str = ""
    audience: str = ""
    roles_claim: str = "roles"
    role_names: dict[Role, str] = field(default_factory=lambda: {role: role.value for role in Role})
    client_id: str = ""
    timeout_s: float = 3.0
    leeway_s: float = 30.0
    max_token_lifetime_s: float = 12 * 3600.0
    key_cooldown_s: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("oidc", "off"):
            raise ValueError(f"authentication mode must be 'oidc' or 'off', not {self.mode!r}")
        if set(self.role_names) != set(Role) or not all(self.role_names.values()):
            raise ValueError(f"role_names must name each of {[r.name for r in Role]}")
        if self.timeout_s <= 0 or self.leeway_s < 0 or self.max_token_lifetime_s <= 0 or self.key_cooldown_s < 0:
            raise ValueError("timeout_s and max_token_lifetime_s must be > 0, leeway_s and key_cooldown_s >= 0 "
                             f"(got {self.timeout_s}, {self.max_token_lifetime_s}, {self.leeway_s}, "
                             f"{self.key_cooldown_s})")
        if self.mode == "oidc":
            if not self.issuer or not self.audience:
                raise ValueError("OIDC authentication needs BTL_OIDC_ISSUER (issuer) and BTL_OIDC_AUDIENCE (audience)")
            _check_provider_url(self.issuer, "issuer")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> AuthSettings:
        """Settings from BTL_AUTH (off|oidc; default oidc when BTL_OIDC_ISSUER is set),
        BTL_OIDC_ISSUER, BTL_OIDC_AUDIENCE, BTL_OIDC_ROLES_CLAIM, BTL_OIDC_CLIENT_ID,
        BTL_OIDC_TIMEOUT_S, BTL_OIDC_LEEWAY_S, BTL_OIDC_MAX_TOKEN_LIFETIME_S,
        BTL_OIDC_KEY_COOLDOWN_S and BTL_ROLE_CLINICIAN/ANNOTATOR/ADMIN. Raises ValueError
        for a value or combination that cannot work."""
        env = os.environ if environ is None else environ
        issuer = env.get("BTL_OIDC_ISSUER", "").strip()
        mode = env.get("BTL_AUTH", "").strip().lower() or ("oidc" if issuer else "off")
        names = {role: env.get(f"BTL_ROLE_{role.name}", "").strip() or role.value for role in Role}
        seconds = {name: _seconds(env, variable, getattr(cls, name)) for name, variable in (
            ("timeout_s", "BTL_OIDC_TIMEOUT_S"), ("leeway_s", "BTL_OIDC_LEEWAY_S"),
            ("max_token_lifetime_s", "BTL_OIDC_MAX_TOKEN_LIFETIME_S"), ("key_cooldown_s", "BTL_OIDC_KEY_COOLDOWN_S"))}
        return cls(
            mode=mode,  # type: ignore[arg-type]  # checked in __post_init__
            issuer=issuer,
            audience=env.get("BTL_OIDC_AUDIENCE", "").strip(),
            roles_claim=env.get("BTL_OIDC_ROLES_CLAIM", "").strip() or "roles",
            role_names=names,
            client_id=env.get("BTL_OIDC_CLIENT_ID", "").strip(),
            **seconds,
        )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, "").strip() or default)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {env[name]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, not {env[name]!r}")
    return value


def _check_provider_url(url: str, what: str) -> None:
    """Provider URLs must be https, or plain http on loopback (a local test provider)."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("http", "https"):
        raise ValueError(f"OIDC {what} must be an http(s) URL, not {url!r}")
    if parts.scheme == "http" and not loopback_only(parts.hostname):
        raise ValueError(f"OIDC {what} {url!r} must use https (plain http only on loopback)")


@dataclass(frozen=True)
class Principal:
    """Who made a request: a display name, the roles granted, and the token's subject."""

    user: str
    roles: frozenset[Role]
    subject: str

    def has(self, role: Role) -> bool:
        """True when one of the granted roles includes ``role``."""
        return any(granted.includes(role) for granted in self.roles)


#: The principal of every request when authentication is off.
LOCAL_USER = Principal(user="local", roles=frozenset(Role), subject="local")


def _get_json(url: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


class _Refresh:
    """A download that runs at most once per ``cooldown_s``, whatever its outcome, and in one
    thread at a time: a caller that finds one under way or too recent is not made to wait."""

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._attempted = -math.inf  # time.monotonic() of the last attempt

    def due(self) -> bool:
        """True when a download would run now (none under way, the last one old enough)."""
        return not self._lock.locked() and time.monotonic() - self._attempted >= self.cooldown_s

    def run(self, download: Callable[[], None]) -> bool:
        """Run ``download`` now if allowed; False when one is under way or the last one is
        less than ``cooldown_s`` old."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if time.monotonic() - self._attempted < self.cooldown_s:
                return False
            self._attempted = time.monotonic()
            download()
            return True
        finally:
            self._lock.release()


class KeySet:
    """The provider's signing keys by key id, from its ``jwks_uri``.

    A token naming a cached key never waits for the network. A key set older than
    ``lifespan_s`` is refreshed in the background while the cached keys keep answering; a
    refresh that finds a key gone drops it. A token naming an unknown key triggers at most
    one download per ``cooldown_s`` (whatever its outcome; other requests meanwhile are
    refused at once), each bounded by ``timeout_s``: forged key ids cannot queue requests
    behind a slow or unreachable provider."""

    def __init__(self, jwks_uri: str, timeout_s: float, lifespan_s: float, cooldown_s: float) -> None:
        self.uri, self.timeout_s, self.lifespan_s = jwks_uri, timeout_s, lifespan_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = -math.inf  # time.monotonic() of the last successful download
        self._error = ""
        self._refresh = _Refresh(cooldown_s)

    def key(self, kid: str) -> jwt.PyJWK:
        """The key ``kid``; AuthenticationError naming the problem when the provider does not
        publish it (or cannot be reached and has never been)."""
        keys = self._keys
        if kid in keys:
            if time.monotonic() - self._fetched > self.lifespan_s and self._refresh.due():
                threading.Thread(target=self.refresh, daemon=True).start()
            return keys[kid]
        self.refresh()
        if kid in self._keys:
            return self._keys[kid]
        if not self._keys and self._error:
            raise AuthenticationError(f"identity provider keys unreachable at {self.uri}: {self._error}")
        raise AuthenticationError(f"token signed with key {kid!r}, which the provider does not publish")

    def refresh(self) -> bool:
        """Download the keys now, unless a download is under way or the last one was less
        than ``cooldown_s`` ago (then False, at once)."""
        return self._refresh.run(self._download)

    def _download(self) -> None:
        try:
            document = _get_json(self.uri, self.timeout_s)
            keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(document).keys if k.key_id}
        except (OSError, ValueError, http.client.HTTPException, jwt.PyJWTError) as exc:
            self._error = str(exc) or type(exc).__name__
            logger.warning("identity provider keys at %s: %s", self.uri, self._error)
            return
        self._keys, self._fetched, self._error = keys, time.monotonic(), ""


class TokenVerifier:
    """Verifies access tokens against the provider of ``settings``. The discovery document
    is fetched once (a failed attempt is retried at most once per ``key_cooldown_s``); the
    keys come from a :class:`KeySet`. Thread-safe; :meth:`warm_up` fetches both ahead of
    the first request."""

    def __init__(self, settings: AuthSettings, *, jwks_lifespan_s: float = 300.0) -> None:
        if settings.mode != "oidc":
            raise ValueError("a TokenVerifier needs OIDC settings (mode 'oidc')")
        self.settings = settings
        self._jwks_lifespan_s = jwks_lifespan_s
        self._keys: KeySet | None = None
        self._metadata: dict[str, Any] | None = None
        self._failure = ""
        self._discovery = _Refresh(settings.key_cooldown_s)

    def warm_up(self) -> None:
        """Fetch discovery and keys now (in a background thread at server start)."""
        try:
            keys = self._key_set()
        except AuthenticationError as exc:
            logger.warning("identity provider not ready at start: %s", exc)
            return
        keys.refresh()

    def provider_metadata(self) -> dict[str, Any]:
        """The provider's discovery document: its token endpoint, for a server that logs
        users in on their behalf. AuthenticationError when it cannot be had."""
        if self._metadata is None:
            self._discovery.run(self._discover)
        if self._metadata is None:
            raise AuthenticationError(self._failure or "identity provider discovery is under way; try again")
        return self._metadata

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; AuthenticationError naming the problem otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed bearer token (not a signed JWT)") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise AuthenticationError(f"token algorithm {alg!r} is not accepted (only {', '.join(ALGORITHMS)})")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("token header names no signing key (kid)")
        key = self._key_set().key(kid)
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self.settings.audience, issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_describe(exc)) from None
        self._check_dates(claims)
        return self._principal(claims)

    def _check_dates(self, claims: Mapping[str, Any]) -> None:
        """exp, nbf and iat as numbers (PyJWT also takes numeric strings), and a lifetime no
        longer than ``max_token_lifetime_s``."""
        for name in _NUMERIC_DATES:
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise AuthenticationError(f"token claim '{name}' is not a number (NumericDate)")
        longest = self.settings.max_token_lifetime_s + self.settings.leeway_s
        exp = float(claims["exp"])
        if exp - time.time() > longest or ("iat" in claims and exp - float(claims["iat"]) > longest):
            raise AuthenticationError(f"token lifetime is longer than this server accepts "
                                      f"({self.settings.max_token_lifetime_s:g} s)")

    def _key_set(self) -> KeySet:
        if self._keys is None:
            self._keys = KeySet(str(self.provider_metadata()["jwks_uri"]), self.settings.timeout_s,
                                self._jwks_lifespan_s, self.settings.key_cooldown_s)
        return self._keys

    def _discover(self) -> None:
        issuer = self.settings.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            document = _get_json(url, self.settings.timeout_s)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self._failure = f"identity provider unreachable: discovery at {url} failed: {exc}"
            return
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            found = document.get("issuer") if isinstance(document, dict) else None
            self._failure = f"discovery at {url} names issuer {found!r}, not the configured {issuer!r}"
            return
        try:
            _check_provider_url(str(document.get("jwks_uri")), "jwks_uri")
        except ValueError as exc:
            self._failure = f"discovery at {url}: {exc}"
            return
        self._metadata, self._failure = document, ""

    def _principal(self, claims: dict[str, Any]) -> Principal:
        granted = _claim_values(claims, self.settings.roles_claim)
        roles = frozenset(role for role, name in self.settings.role_names.items() if name in granted)
        subject = str(claims.get("sub") or "")
        user = next((str(claims[k]) for k in ("preferred_username", "sub", "client_id", "azp") if claims.get(k)), "")
        return Principal(user=user or "unknown", roles=roles, subject=subject or user)


def _claim_values(claims: Mapping[str, Any], path: str) -> set[str]:
    """The strings at a dotted claim path: a list of names, or one space-separated string."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list | tuple):
        return {item for item in value if isinstance(item, str)}
    return set()


def _describe(exc: jwt.PyJWTError) -> str:
    """Why PyJWT refused a token, in words for the 401 answer."""
    match exc:
        case jwt.ExpiredSignatureError():
            return "token expired"
        case jwt.ImmatureSignatureError():
            return "token not valid yet (nbf/iat in the future)"
        case jwt.InvalidAudienceError():
            return "token audience is not this server (wrong audience)"
        case jwt.InvalidIssuerError():
            return "token issued by another issuer (wrong issuer)"
        case jwt.InvalidSignatureError():
            return "token signature does not verify (forged or altered token)"
        case jwt.MissingRequiredClaimError():
            return f"token lacks the required '{exc.claim}' claim"
        case _:
            return f"invalid token: {exc}"


class NotServed(Exception):
    """A method and path that no route of the server answers (HTTP 404)."""


#: The role a request needs: a Role, None for a public route; NotServed when none answers it.
RoleOf = Callable[[str, str], "Role | None"]

#: Headers a reverse proxy adds: with authentication off, a request through a proxy is refused.
_FORWARDED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


class AuthMiddleware:
    """ASGI middleware in front of every request: 404 for a route the server does not serve
    (``role_of`` raises :class:`NotServed`), 401 for no or an invalid token (with
    ``WWW-Authenticate: Bearer``), 403 for a role that is not enough, each as
    ``{"detail": ...}``. Let through, a request carries its :class:`Principal` in
    ``scope["state"]["principal"]`` (``request.state.principal``; None on public routes
    when authentication is on).

    With authentication off, a request is answered only when it reached the server on a
    loopback address (the socket's own address, whatever address the server was told to
    bind) and carries no proxy header (403 otherwise)."""

    def __init__(self, app: ASGIApp, settings: AuthSettings, role_of: RoleOf,
                 verifier: TokenVerifier | None = None) -> None:
        self.app = app
        self.settings = settings
        self.role_of = role_of
        self.verifier = None if settings.mode == "off" else verifier or TokenVerifier(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method", "GET"), _route_path(scope)
        try:
            role = self.role_of(method, path) if scope["type"] == "http" else Role.ADMIN
            principal = await self._authorize(scope, role)
        except (AuthenticationError, AccessDenied, NotServed) as exc:
            logger.warning("%d %s %s: %s", _status(exc), method, path[:200], exc)
            await _refuse(scope, receive, send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _authorize(self, scope: Scope, role: Role | None) -> Principal | None:
        if self.verifier is None:
            _check_local(scope)
            return LOCAL_USER
        if role is None:
            return None
        scheme, _, token = _header(scope, b"authorization").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingToken("missing bearer token (Authorization: Bearer <access token>)")
        principal = await anyio.to_thread.run_sync(self.verifier.verify, token.strip())
        if not principal.has(role):
            held = ", ".join(sorted(principal.roles)) or "none"
            raise AccessDenied(f"user {principal.user!r} needs role {role.value!r} (has: {held})")
        return principal


def _check_local(scope: Scope) -> None:
    """Authentication off: the connection must have arrived on a loopback address, directly."""
    server = scope.get("server")
    if not server or not loopback_only(str(server[0])):
        raise AccessDenied("authentication is off, so this server answers only on a loopback address; set "
                           "BTL_OIDC_ISSUER and BTL_OIDC_AUDIENCE to serve other computers")
    if any(key.lower() in _FORWARDED for key, _ in scope.get("headers", [])):
        raise AccessDenied("authentication is off, so this server answers no request through a proxy; set "
                           "BTL_OIDC_ISSUER and BTL_OIDC_AUDIENCE to serve behind one")


def _route_path(scope: Scope) -> str:
    """The path the app routes on: the request path less the app's root_path, as Starlette's
    router computes it (so a request is checked against the route that will answer it)."""
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    if root and path.startswith(root) and (path == root or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def _header(scope: Scope, name: bytes) -> str:
    return next((value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name), "")


def _status(exc: Exception) -> int:
    return 404 if isinstance(exc, NotServed) else 401 if isinstance(exc, AuthenticationError) else 403


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer 404, 401 or 403 (RFC 6750 challenge) without calling the app; close a websocket."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": str(exc)[:120]})
        return
    status, headers = _status(exc), {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer" if isinstance(exc, MissingToken) else 'Bearer error="invalid_token"'
    elif status == 403:
        headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope"'
    response = JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)
    await response(scope, receive, send)
