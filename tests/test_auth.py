"""OIDC bearer-token authentication and role checks (lib/auth.py) against a real OpenID
Connect provider on loopback (tests/oidc_provider): real discovery, JWKS and signed tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from lib.auth import (
    ROUTE_ROLES,
    AuthenticationError,
    AuthMiddleware,
    AuthSettings,
    Principal,
    Role,
    TokenVerifier,
    loopback_only,
    required_role,
)

from _oidc import OidcProvider, oidc_provider

AUDIENCE = "braintumorlabel"
ROLE_OF_CLIENT = {
    "clinician-client": {Role.CLINICIAN},
    "annotator-client": {Role.ANNOTATOR},
    "admin-client": {Role.ADMIN},
    "norole-client": set(),
}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with oidc_provider(AUDIENCE) as running:
        yield running


@pytest.fixture(scope="module")
def verifier(provider: OidcProvider) -> TokenVerifier:
    return TokenVerifier(oidc_settings(provider.issuer))


def oidc_settings(issuer: str, **changes: Any) -> AuthSettings:
    """OIDC settings for ``issuer`` and AUDIENCE, with a 2 s timeout unless ``changes`` say otherwise."""
    return replace(AuthSettings(mode="oidc", issuer=issuer, audience=AUDIENCE, timeout_s=2.0), **changes)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified(token: str) -> tuple[dict, dict]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


# --- settings and roles --------------------------------------------------------------------


def test_role_hierarchy() -> None:
    assert Role.ADMIN.includes(Role.ANNOTATOR) and Role.ADMIN.includes(Role.CLINICIAN)
    assert Role.ANNOTATOR.includes(Role.CLINICIAN) and Role.ANNOTATOR.includes(Role.ANNOTATOR)
    assert not Role.CLINICIAN.includes(Role.ANNOTATOR) and not Role.ANNOTATOR.includes(Role.ADMIN)
    assert Principal("u", frozenset({Role.ANNOTATOR}), "u").has(Role.CLINICIAN)
    assert not Principal("u", frozenset(), "u").has(Role.CLINICIAN)


def test_settings_from_environment() -> None:
    assert AuthSettings.from_environment({}).mode == "off"
    keycloak = AuthSettings.from_environment({
        "BTL_OIDC_ISSUER": "https://sso.example.org/realms/radiology", "BTL_OIDC_AUDIENCE": "braintumorlabel",
        "BTL_OIDC_ROLES_CLAIM": "realm_access.roles", "BTL_ROLE_ADMIN": "btl-admin", "BTL_OIDC_TIMEOUT_S": "3",
    })
    assert keycloak.mode == "oidc" and keycloak.roles_claim == "realm_access.roles" and keycloak.timeout_s == 3.0
    assert keycloak.role_names == {Role.CLINICIAN: "clinician", Role.ANNOTATOR: "annotator", Role.ADMIN: "btl-admin"}
    off = AuthSettings.from_environment({"BTL_AUTH": "off", "BTL_OIDC_ISSUER": "https://sso.example.org"})
    assert off.mode == "off"
    with pytest.raises(ValueError, match="BTL_OIDC_ISSUER"):
        AuthSettings.from_environment({"BTL_AUTH": "oidc", "BTL_OIDC_AUDIENCE": "x"})
    with pytest.raises(ValueError, match="BTL_OIDC_AUDIENCE"):
        AuthSettings.from_environment({"BTL_OIDC_ISSUER": "https://sso.example.org"})
    with pytest.raises(ValueError, match="'oidc' or 'off'"):
        AuthSettings.from_environment({"BTL_AUTH": "basic"})
    with pytest.raises(ValueError, match="https"):
        AuthSettings.from_environment({"BTL_OIDC_ISSUER": "http://sso.example.org", "BTL_OIDC_AUDIENCE": "x"})
    with pytest.raises(ValueError, match="BTL_OIDC_TIMEOUT_S"):
        AuthSettings.from_environment({"BTL_OIDC_TIMEOUT_S": "soon"})


def test_loopback_only() -> None:
    assert all(map(loopback_only, ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"]))
    assert not any(map(loopback_only, ["0.0.0.0", "10.0.0.1", "::", "example.org", "128.0.0.1", ""]))


# --- tokens from the real provider -------------------------------------------------------


@pytest.mark.parametrize("client", sorted(ROLE_OF_CLIENT))
def test_token_of_each_client_verifies_to_its_role(provider: OidcProvider, verifier: TokenVerifier,
                                                   client: str) -> None:
    principal = verifier.verify(provider.token(client))
    assert principal.roles == ROLE_OF_CLIENT[client]
    assert principal.user == principal.subject == client  # client_credentials: sub is the client id


def test_role_names_map_the_providers_roles(provider: OidcProvider) -> None:
    renamed = {Role.CLINICIAN: "nobody", Role.ANNOTATOR: "ml_admin", Role.ADMIN: "annotator"}
    principal = TokenVerifier(oidc_settings(provider.issuer, role_names=renamed)).verify(provider.token("admin-client"))
    assert principal.roles == {Role.ANNOTATOR}
    nested = TokenVerifier(oidc_settings(provider.issuer, roles_claim="realm_access.roles"))
    assert nested.verify(provider.token("admin-client")).roles == frozenset()  # no such claim: no roles


def test_expired_token_is_refused_naming_expiry() -> None:
    with oidc_provider(AUDIENCE, token_ttl_s=1) as short:
        token = short.token("admin-client")
        strict = TokenVerifier(oidc_settings(short.issuer, leeway_s=0.0))
        lenient = TokenVerifier(oidc_settings(short.issuer))  # 30 s clock-skew leeway
        time.sleep(2.2)
        with pytest.raises(AuthenticationError, match="expired"):
            strict.verify(token)
        assert lenient.verify(token).roles == {Role.ADMIN}


def test_token_for_another_audience_is_refused(provider: OidcProvider, verifier: TokenVerifier) -> None:
    for token in (provider.token("wrongaud-client"), provider.token("admin-client", audience="other-api")):
        assert unverified(token)[1]["aud"] == "other-api"
        with pytest.raises(AuthenticationError, match="audience"):
            verifier.verify(token)


def test_token_from_another_provider_is_refused(verifier: TokenVerifier) -> None:
    with oidc_provider(AUDIENCE) as other:
        token = other.token("admin-client")
    with pytest.raises(AuthenticationError, match="does not publish") as refused:
        verifier.verify(token)
    assert token not in str(refused.value)


def test_discovery_naming_another_issuer_is_refused(provider: OidcProvider) -> None:
    alias = provider.issuer.replace("127.0.0.1", "localhost")  # the same server, not the same issuer
    with pytest.raises(AuthenticationError, match="issuer"):
        TokenVerifier(oidc_settings(alias)).verify(provider.token("admin-client"))


def forged(claims: dict, kid: str) -> str:
    """A token with ``claims`` signed by a fresh RSA key that the provider never saw."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})


def test_forged_and_altered_tokens_are_refused(provider: OidcProvider, verifier: TokenVerifier) -> None:
    real = provider.token("clinician-client")
    header, claims = unverified(real)
    escalated = {**claims, "roles": ["ml_admin"]}
    with pytest.raises(AuthenticationError, match="signature"):
        verifier.verify(forged(escalated, kid=header["kid"]))  # the provider's key id, another key
    with pytest.raises(AuthenticationError, match="does not publish"):
        verifier.verify(forged(escalated, kid="attacker-key"))
    head, _, signature = real.split(".")
    altered = f"{head}.{b64url(json.dumps(escalated).encode())}.{signature}"  # the real signature, new claims
    with pytest.raises(AuthenticationError, match="signature"):
        verifier.verify(altered)
    assert verifier.verify(real).roles == {Role.CLINICIAN}


def test_unsigned_and_symmetric_tokens_are_refused(provider: OidcProvider, verifier: TokenVerifier) -> None:
    header, claims = unverified(provider.token("clinician-client"))
    body = b64url(json.dumps({**claims, "roles": ["ml_admin"]}).encode())
    unsigned = f"{b64url(json.dumps({**header, 'alg': 'none'}).encode())}.{body}."
    with pytest.raises(AuthenticationError, match="algorithm 'none' is not accepted"):
        verifier.verify(unsigned)
    # HS256 keyed with the provider's public JWKS (the classic algorithm-confusion attack)
    with urllib.request.urlopen(f"{provider.issuer}/jwks", timeout=10) as response:
        secret = response.read()
    signing_input = f"{b64url(json.dumps({**header, 'alg': 'HS256'}).encode())}.{body}"
    mac = b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    with pytest.raises(AuthenticationError, match="algorithm 'HS256' is not accepted"):
        verifier.verify(f"{signing_input}.{mac}")
    for garbage in ("", "not-a-jwt", "a.b.c"):
        with pytest.raises(AuthenticationError, match="malformed"):
            verifier.verify(garbage)


def test_keys_are_cached_and_a_rotated_key_is_fetched() -> None:
    with oidc_provider(AUDIENCE) as first:
        rotating = TokenVerifier(oidc_settings(first.issuer), jwks_cooldown_s=0.0)
        old = first.token("admin-client")
        assert rotating.verify(old).roles == {Role.ADMIN}
        port = first.port
    assert rotating.verify(old).roles == {Role.ADMIN}  # provider gone: the cached keys still verify
    with oidc_provider(AUDIENCE, port=port) as second:  # same issuer, new signing key
        assert unverified(second.token("admin-client"))[0]["kid"] != unverified(old)[0]["kid"]
        assert rotating.verify(second.token("annotator-client")).roles == {Role.ANNOTATOR}
        with pytest.raises(AuthenticationError, match="does not publish"):
            rotating.verify(old)  # its key is no longer published


@pytest.mark.timeout(30)  # a hang fails here, not after the suite's 900 s
def test_stopped_provider_gives_a_clear_error_at_once(provider: OidcProvider) -> None:
    with oidc_provider(AUDIENCE) as gone:
        token = gone.token("admin-client")
    fresh = TokenVerifier(oidc_settings(gone.issuer))
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="unreachable"):
        fresh.verify(token)
    assert time.monotonic() - started < 2.0


@pytest.mark.timeout(30)  # a hang fails here, not after the suite's 900 s
def test_unresponsive_provider_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:  # accepts connections, never answers
        issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
        hung = TokenVerifier(oidc_settings(issuer, timeout_s=1.0))
        started = time.monotonic()
        with pytest.raises(AuthenticationError, match="unreachable.*timed out"):
            hung.verify(forged({"iss": issuer, "aud": AUDIENCE, "exp": time.time() + 60}, kid="k"))
        assert 0.9 < time.monotonic() - started < 5.0
        started = time.monotonic()
        with pytest.raises(AuthenticationError, match="unreachable"):  # within the retry delay: at once
            hung.verify(forged({"iss": issuer, "aud": AUDIENCE, "exp": time.time() + 60}, kid="k"))
        assert time.monotonic() - started < 0.5


# --- the route table ---------------------------------------------------------------------

#: Routes of MONAI Label 0.8.5 that, on purpose, fall to the default (ADMIN): none.
DEFAULT_DENIED_ON_PURPOSE: set[tuple[str, str]] = set()


def monailabel_routes() -> list[tuple[str, str]]:
    """(method, route path) of every route of MONAI Label's app, with its /auth routes."""
    from fastapi.routing import iter_route_contexts
    from monailabel.app import app
    from monailabel.endpoints import login

    routes = []
    for route in [*iter_route_contexts(app.routes), *login.router.routes]:
        path = getattr(route, "path", None)
        assert path, f"a route without a path: {route!r}"
        methods = getattr(route, "methods", None) or {"GET"}  # a mount: the static files
        routes += [(method, path) for method in sorted(methods)]
    return routes


def concrete(path: str) -> str:
    """A request path for a route path: parameters filled in, a mount given a file."""
    path = re.sub(r"\{\w+:path\}", "a/b.js", path)
    path = re.sub(r"\{\w+\}", "x", path)
    return path if path != "/static" else "/static/app.css"


def explicit_row(method: str, path: str) -> bool:
    method = "GET" if method == "HEAD" else method
    return any(m in ("*", method) and pattern.fullmatch(path) for m, pattern, _ in ROUTE_ROLES)


def test_every_monailabel_route_has_an_explicit_row() -> None:
    routes = monailabel_routes()
    assert len(routes) > 50 and ("PUT", "/datastore/label") in routes and ("GET", "/auth/") in routes
    defaulted = {(method, path) for method, path in routes if not explicit_row(method, concrete(path))}
    assert defaulted == DEFAULT_DENIED_ON_PURPOSE
    table = {(method, path): required_role(method, concrete(path)) for method, path in routes}
    public = {route for route, role in table.items() if role is None}
    assert public == {("GET", "/"), ("HEAD", "/docs"), ("GET", "/docs"), ("HEAD", "/openapi.json"),
                      ("GET", "/openapi.json"), ("GET", "/static"), ("GET", "/favicon.ico"), ("GET", "/auth/"),
                      ("POST", "/auth/token")}
    annotator = {route for route, role in table.items() if role == Role.ANNOTATOR}
    assert annotator == {("PUT", "/datastore/label"), ("PUT", "/datastore/label/info"),
                         ("PUT", "/datastore/image/info"), ("PUT", "/datastore/updatelabelinfo"),
                         ("POST", "/activelearning/{strategy}")}


@pytest.mark.parametrize(("method", "path", "role"), [
    ("PUT", "/datastore/label", Role.ANNOTATOR),
    ("PUT", "/datastore/label/", Role.ANNOTATOR),
    ("DELETE", "/datastore/", Role.ADMIN),
    ("DELETE", "/datastore/label", Role.ADMIN),
    ("PUT", "/datastore/image", Role.ADMIN),
    ("GET", "/datastore/dataset", Role.ADMIN),
    ("GET", "/datastore/image", Role.CLINICIAN),
    ("HEAD", "/datastore/label", Role.CLINICIAN),
    ("GET", "/info/", Role.CLINICIAN),
    ("GET", "/info", Role.CLINICIAN),
    ("POST", "/infer/segmentation", Role.CLINICIAN),
    ("GET", "/train/", Role.CLINICIAN),
    ("POST", "/train/x", Role.ADMIN),
    ("DELETE", "/train/", Role.ADMIN),
    ("GET", "/model/info/segmentation", Role.CLINICIAN),
    ("GET", "/model/segmentation", Role.ADMIN),
    ("GET", "/model/info", Role.ADMIN),  # that is the download of a model called "info"
    ("GET", "/logs/", Role.ADMIN),
    ("PUT", "/session/", Role.CLINICIAN),
    ("GET", "/auth/", None),
    ("POST", "/auth/token", None),
    ("GET", "/static/../datastore/dataset", None),  # Starlette routes it to the static files too
    ("OPTIONS", "/datastore/dataset", None),
    ("GET", "/btl/reports/x", Role.CLINICIAN),
    ("POST", "/btl/sequences/identify", Role.CLINICIAN),
    ("POST", "/btl/reports/x", Role.ADMIN),
    ("GET", "/btl/audit", Role.ADMIN),
    ("GET", "/btl/admin/models", Role.ADMIN),
    ("POST", "/btl/admin/models/v1/serve", Role.ADMIN),
    ("GET", "/btl/models", Role.CLINICIAN),
    ("GET", "/nowhere", Role.ADMIN),
    ("GET", "//datastore/image", Role.ADMIN),
    ("POST", "/", Role.ADMIN),
])
def test_required_role(method: str, path: str, role: Role | None) -> None:
    assert required_role(method, path) == role


# --- the middleware ----------------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    principal = request.state.principal
    if principal is None:
        return JSONResponse({"user": None})
    return JSONResponse({"user": principal.user, "roles": sorted(principal.roles)})


def client_for(settings: AuthSettings, verifier: TokenVerifier | None = None) -> TestClient:
    routes = [Route("/", whoami), Route("/info/", whoami), Route("/datastore/label", whoami, methods=["PUT"]),
              Route("/train/{model}", whoami, methods=["POST"]), Route("/nowhere", whoami)]
    return TestClient(AuthMiddleware(Starlette(routes=routes), settings, verifier))


def test_middleware_checks_token_and_role(provider: OidcProvider, verifier: TokenVerifier) -> None:
    client = client_for(verifier.settings, verifier)
    bearer = {name: {"Authorization": f"Bearer {provider.token(name)}"} for name in ROLE_OF_CLIENT}

    missing = client.get("/info/")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in missing.json()["detail"]
    invalid = client.get("/info/", headers={"Authorization": "Bearer not-a-jwt"})
    assert invalid.status_code == 401 and invalid.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert client.get("/info/", headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 401

    denied = client.put("/datastore/label", headers=bearer["clinician-client"])
    assert denied.status_code == 403 and "annotator" in denied.json()["detail"]
    assert client.get("/info/", headers=bearer["norole-client"]).status_code == 403
    assert client.get("/nowhere", headers=bearer["annotator-client"]).status_code == 403  # default: ADMIN

    assert client.get("/info/", headers=bearer["clinician-client"]).json() == {
        "user": "clinician-client", "roles": ["clinician"]}
    assert client.put("/datastore/label", headers=bearer["annotator-client"]).status_code == 200
    admin = client.post("/train/segmentation", headers=bearer["admin-client"])
    assert admin.status_code == 200 and admin.json() == {"user": "admin-client", "roles": ["ml_admin"]}
    assert client.get("/").json() == {"user": None}  # public, no token needed


def test_middleware_with_authentication_off_lets_everything_through() -> None:
    client = client_for(AuthSettings(mode="off"))
    answer = client.post("/train/segmentation")
    assert answer.status_code == 200
    assert answer.json() == {"user": "local", "roles": sorted(Role)}


def test_middleware_on_monailabels_app(provider: OidcProvider, verifier: TokenVerifier) -> None:
    from monailabel.app import app

    client = TestClient(AuthMiddleware(app, verifier.settings, verifier))  # no lifespan: no app instance needed
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/info/").status_code == 401
    clinician = {"Authorization": f"Bearer {provider.token('clinician-client')}"}
    for method, path in [("DELETE", "/datastore/?id=x"), ("PUT", "/datastore/label?image=x"),
                         ("POST", "/train/segmentation"), ("GET", "/datastore/dataset"), ("GET", "/logs/")]:
        assert client.request(method, path, headers=clinician).status_code == 403, (method, path)
    preflight = {"Origin": "http://viewer.example", "Access-Control-Request-Method": "PUT"}
    assert client.options("/datastore/label", headers=preflight).status_code == 200  # CORS: no credentials sent
