"""OpenID Connect bearer-token authentication and role checks for the server.

Clients send ``Authorization: Bearer <access token>``, a JWT from the hospital's identity
provider (Keycloak, Entra ID, ...). :class:`TokenVerifier` checks it against the provider's
published keys; :class:`AuthMiddleware` wraps the ASGI app and lets a request through only
when the token's roles include the one :data:`ROUTE_ROLES` requires for its route. A route
missing from the table requires :attr:`Role.ADMIN` (default deny).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import re
import threading
import time
import urllib.request
from collections.abc import Mapping
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


class Role(StrEnum):
    """What a user may do; each role has every right of the roles listed before it."""

    CLINICIAN = "clinician"  # view studies, run inference, read reports
    ANNOTATOR = "annotator"  # also submit labels
    ADMIN = "ml_admin"  # also train, publish or roll back models, delete, bulk data, logs

    def includes(self, other: Role) -> bool:
        """True when this role has every right of ``other``."""
        ranks = list(Role)
        return ranks.index(self) >= ranks.index(other)


class AuthenticationError(Exception):
    """No valid token (HTTP 401). The message says why; it never contains the token."""


class MissingToken(AuthenticationError):
    """The request has no ``Authorization: Bearer`` header (HTTP 401)."""


class AccessDenied(Exception):
    """A valid token whose roles do not allow the request (HTTP 403)."""


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
    operation with the provider; ``leeway_s`` is the clock skew allowed on exp/nbf/iat."""

    mode: Literal["oidc", "off"] = "off"
    issuer: str = ""
    audience: str = ""
    roles_claim: str = "roles"
    role_names: dict[Role, str] = field(default_factory=lambda: {role: role.value for role in Role})
    client_id: str = ""
    timeout_s: float = 5.0
    leeway_s: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in ("oidc", "off"):
            raise ValueError(f"authentication mode must be 'oidc' or 'off', not {self.mode!r}")
        if set(self.role_names) != set(Role) or not all(self.role_names.values()):
            raise ValueError(f"role_names must name each of {[r.name for r in Role]}")
        if self.timeout_s <= 0 or self.leeway_s < 0:
            raise ValueError(f"timeout_s must be > 0 and leeway_s >= 0 (got {self.timeout_s}, {self.leeway_s})")
        if self.mode == "oidc":
            if not self.issuer or not self.audience:
                raise ValueError("OIDC authentication needs BTL_OIDC_ISSUER (issuer) and BTL_OIDC_AUDIENCE (audience)")
            _check_provider_url(self.issuer, "issuer")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> AuthSettings:
        """Settings from BTL_AUTH (off|oidc; default oidc when BTL_OIDC_ISSUER is set),
        BTL_OIDC_ISSUER, BTL_OIDC_AUDIENCE, BTL_OIDC_ROLES_CLAIM, BTL_OIDC_CLIENT_ID,
        BTL_OIDC_TIMEOUT_S, BTL_OIDC_LEEWAY_S and BTL_ROLE_CLINICIAN/ANNOTATOR/ADMIN.
        Raises ValueError for a value or combination that cannot work."""
        env = os.environ if environ is None else environ
        issuer = env.get("BTL_OIDC_ISSUER", "").strip()
        mode = env.get("BTL_AUTH", "").strip().lower() or ("oidc" if issuer else "off")
        names = {role: env.get(f"BTL_ROLE_{role.name}", "").strip() or role.value for role in Role}
        return cls(
            mode=mode,  # type: ignore[arg-type]  # checked in __post_init__
            issuer=issuer,
            audience=env.get("BTL_OIDC_AUDIENCE", "").strip(),
            roles_claim=env.get("BTL_OIDC_ROLES_CLAIM", "").strip() or "roles",
            role_names=names,
            client_id=env.get("BTL_OIDC_CLIENT_ID", "").strip(),
            timeout_s=_seconds(env, "BTL_OIDC_TIMEOUT_S", 5.0),
            leeway_s=_seconds(env, "BTL_OIDC_LEEWAY_S", 30.0),
        )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, "").strip() or default)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {env[name]!r}") from None


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


class TokenVerifier:
    """Verifies access tokens against the provider of ``settings``. Discovery is fetched once,
    on first use (after a failure, it is retried ``settings.timeout_s`` later: until then the
    same error is raised at once). The JWK set is cached ``jwks_lifespan_s`` and re-fetched
    early when a token names an unknown key id, at most once per ``jwks_cooldown_s``; a key
    the provider stops publishing is refused once the cache expires. Thread-safe; network I/O
    happens only on cache misses, each socket operation bounded by ``settings.timeout_s``."""

    def __init__(self, settings: AuthSettings, *, jwks_lifespan_s: float = 300.0, jwks_cooldown_s: float = 10.0):
        if settings.mode != "oidc":
            raise ValueError("a TokenVerifier needs OIDC settings (mode 'oidc')")
        self.settings = settings
        self._jwks_lifespan_s = jwks_lifespan_s
        self._jwks_cooldown_s = jwks_cooldown_s
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._failure: tuple[float, str] | None = None  # (time.monotonic(), message) of a failed discovery
        self._metadata: dict[str, Any] | None = None

    def provider_metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once): its token endpoint, for a server
        that logs users in on their behalf."""
        with self._lock:
            if self._metadata is None:
                self._metadata = self._discover()
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
        key = self._signing_key(kid)
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self.settings.audience, issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_describe(exc)) from None
        return self._principal(claims)

    def _signing_key(self, kid: str) -> jwt.PyJWK:
        client = self._jwks_client()
        try:
            return client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthenticationError(f"identity provider keys unreachable at {client.uri}: {exc}") from None
        except jwt.PyJWTError:
            raise AuthenticationError(f"token signed with key {kid!r}, which the provider does not publish") from None

    def _jwks_client(self) -> jwt.PyJWKClient:
        """The JWKS client, made from the provider's discovery document on first use."""
        with self._lock:
            if self._jwks is not None:
                return self._jwks
            if self._failure and time.monotonic() - self._failure[0] < self.settings.timeout_s:
                raise AuthenticationError(self._failure[1])
            try:
                jwks_uri = self._discover()["jwks_uri"]
            except AuthenticationError as exc:
                self._failure = (time.monotonic(), str(exc))
                raise
            self._jwks = jwt.PyJWKClient(
                jwks_uri, cache_jwk_set=True, lifespan=self._jwks_lifespan_s,
                timeout=self.settings.timeout_s, cooldown_duration=self._jwks_cooldown_s,
            )
            return self._jwks

    def _discover(self) -> dict[str, Any]:
        issuer = self.settings.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=self.settings.timeout_s) as response:
                document = json.load(response)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise AuthenticationError(f"identity provider unreachable: discovery at {url} failed: {exc}") from None
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            found = document.get("issuer") if isinstance(document, dict) else None
            raise AuthenticationError(f"discovery at {url} names issuer {found!r}, not the configured {issuer!r}")
        jwks_uri = document.get("jwks_uri")
        try:
            _check_provider_url(str(jwks_uri), "jwks_uri")
        except ValueError as exc:
            raise AuthenticationError(f"discovery at {url}: {exc}") from None
        return document

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


def _route(method: str, template: str, role: Role | None) -> tuple[str, re.Pattern[str], Role | None]:
    """A table row from a route template in FastAPI syntax; a trailing slash is optional."""
    regex = re.sub(r"\{\w+:path\}", ".*", template.rstrip("/"))
    regex = re.sub(r"\{\w+\}", "[^/]+", regex)
    return method, re.compile(f"{regex}/?"), role


_CLIN, _ANNO, _ADMIN = Role.CLINICIAN, Role.ANNOTATOR, Role.ADMIN
#: (method or "*", path pattern, role needed or None = public), for MONAI Label 0.8.5's routes
#: and the app's /btl/ routes. The first row that matches wins; HEAD is checked as GET. A
#: request that no row matches needs ADMIN. Rows for ADMIN may match more than the route.
ROUTE_ROLES: tuple[tuple[str, re.Pattern[str], Role | None], ...] = (
    _route("OPTIONS", "/{any:path}", None),  # CORS preflight: browsers send no credentials
    *(_route("GET", path, None) for path in ("/", "/docs", "/openapi.json", "/favicon.ico", "/static/{p:path}")),
    _route("GET", "/auth/", None),
    _route("POST", "/auth/token", None),
    _route("GET", "/auth/token/valid", _CLIN),
    _route("GET", "/info/", _CLIN),
    _route("GET", "/model/info/{model}", _CLIN),
    _route("*", "/model/{any:path}", _ADMIN),  # download or replace weights
    *(_route("POST", path, _CLIN) for path in ("/infer/{model}", "/infer/wsi/{model}", "/infer/wsi_v2/{model}")),
    _route("*", "/batch{any:path}", _ADMIN),
    _route("GET", "/train/", _CLIN),  # status
    _route("*", "/train{any:path}", _ADMIN),
    _route("POST", "/activelearning/{strategy}", _ANNO),
    _route("*", "/scoring{any:path}", _ADMIN),
    _route("GET", "/datastore/dataset", _ADMIN),  # the whole dataset as a zip
    *(_route("GET", path, _CLIN) for path in ("/datastore/", "/datastore/image", "/datastore/image/info")),
    *(_route("GET", path, _CLIN) for path in ("/datastore/label", "/datastore/label/info")),
    *(_route("PUT", path, _ANNO) for path in ("/datastore/label", "/datastore/label/info", "/datastore/image/info")),
    _route("PUT", "/datastore/updatelabelinfo", _ANNO),
    _route("*", "/datastore{any:path}", _ADMIN),  # upload a study, delete
    _route("*", "/logs{any:path}", _ADMIN),
    _route("*", "/ohif{any:path}", _ADMIN),
    _route("*", "/proxy{any:path}", _ADMIN),
    _route("POST", "/reload", _ADMIN),
    _route("GET", "/session/{session_id}", _CLIN),
    _route("PUT", "/session/", _CLIN),
    _route("DELETE", "/session/{session_id}", _CLIN),
    _route("*", "/btl/audit{rest:path}", _ADMIN),
    _route("*", "/btl/studies/{image_id}/report{rest:path}", _CLIN),  # clinicians draft, review and sign
    _route("*", "/btl/admin{rest:path}", _ADMIN),
    _route("POST", "/btl/sequences/identify", _CLIN),
    _route("GET", "/btl/{rest:path}", _CLIN),
)


def required_role(method: str, path: str) -> Role | None:
    """The role a request needs, None for a public route, ADMIN for a route not in the table."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    for row_method, pattern, role in ROUTE_ROLES:
        if row_method in ("*", method) and pattern.fullmatch(path):
            return role
    return Role.ADMIN


class AuthMiddleware:
    """ASGI middleware: refuses requests without the role their route needs, answering 401
    (no/invalid token, with ``WWW-Authenticate: Bearer``) or 403 as ``{"detail": ...}``. Let
    through, a request carries its :class:`Principal` in ``scope["state"]["principal"]``
    (``request.state.principal``; None on public routes when authentication is on)."""

    def __init__(self, app: ASGIApp, settings: AuthSettings, verifier: TokenVerifier | None = None) -> None:
        self.app = app
        self.settings = settings
        self.verifier = None if settings.mode == "off" else verifier or TokenVerifier(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method", "GET"), _route_path(scope)
        try:
            principal = await self._authorize(scope, required_role(method, path))
        except (AuthenticationError, AccessDenied) as exc:
            status = 401 if isinstance(exc, AuthenticationError) else 403
            logger.warning("%d %s %s: %s", status, method, path, exc)
            await _refuse(scope, receive, send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _authorize(self, scope: Scope, role: Role | None) -> Principal | None:
        if self.verifier is None:
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


def _route_path(scope: Scope) -> str:
    """The path the app routes on: the request path less the app's root_path, as Starlette's
    router computes it (so a request is checked against the route that will answer it)."""
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    if root and path.startswith(root) and (path == root or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def _header(scope: Scope, name: bytes) -> str:
    return next((value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name), "")


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer 401 or 403 (RFC 6750 challenge) without calling the app; close a websocket."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": str(exc)[:120]})
        return
    status, challenge = 403, 'Bearer error="insufficient_scope"'
    if isinstance(exc, AuthenticationError):
        status, challenge = 401, "Bearer" if isinstance(exc, MissingToken) else 'Bearer error="invalid_token"'
    response = JSONResponse({"detail": str(exc)}, status_code=status, headers={"WWW-Authenticate": challenge})
    await response(scope, receive, send)
