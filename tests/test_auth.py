"""OIDC bearer-token authentication and role checks (lib/server/auth.py, the route table of
lib/server/routes.py) against a real OpenID Connect provider on loopback (tests/oidc_provider):
real discovery, JWKS and signed tokens; and against a minimal issuer of our own
(:func:`own_issuer`) for the tokens no real provider issues (dates as strings, long lifetimes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.routing import iter_route_contexts
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from lib.server.application import build_app
from lib.server.auth import (
    AuthenticationError,
    AuthMiddleware,
    AuthSettings,
    NotServed,
    Principal,
    Role,
    TokenVerifier,
    loopback_only,
)
from lib.server.routes import ROUTES, role_of
from lib.server.settings import ServerSettings

from _fuzz import NOT_SERVED
from _oidc import OidcProvider, OwnIssuer, oidc_provider, own_oidc_issuer

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
        rotating = TokenVerifier(oidc_settings(first.issuer, key_cooldown_s=0.0))
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


def test_the_app_serves_exactly_the_route_table() -> None:
    app = build_app(ServerSettings(), AuthSettings())  # checks it: a route not in the table fails the build
    served = {(method, route.path) for route in iter_route_contexts(app.routes) for method in route.methods or ()}
    assert ("GET", "/docs") in served and ("PUT", "/session/") not in served
    public = {(rule.method, rule.path) for rule in ROUTES if rule.role is None}
    assert public == {("GET", "/"), ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/auth/"),
                      ("POST", "/auth/token")}
    annotator = {(rule.method, rule.path) for rule in ROUTES if rule.role == Role.ANNOTATOR}
    assert annotator == {("PUT", "/datastore/label"), ("PUT", "/datastore/label/info"),
                         ("POST", "/activelearning/{strategy}")}


@pytest.mark.parametrize(("method", "path"), NOT_SERVED)
def test_routes_not_in_the_table_are_not_served(method: str, path: str) -> None:
    with pytest.raises(NotServed):
        role_of(method, path)


@pytest.mark.parametrize(("method", "path", "role"), [
    ("PUT", "/datastore/label", Role.ANNOTATOR),
    ("PUT", "/datastore/label/", Role.ANNOTATOR),
    ("DELETE", "/datastore/", Role.ADMIN),
    ("DELETE", "/datastore/label", Role.ADMIN),
    ("PUT", "/datastore/image", Role.ADMIN),
    ("PUT", "/datastore/", Role.ADMIN),
    ("GET", "/datastore/dataset", Role.ADMIN),
    ("GET", "/datastore/image", Role.CLINICIAN),
    ("HEAD", "/datastore/label", Role.CLINICIAN),
    ("GET", "/info/", Role.CLINICIAN),
    ("GET", "/info", Role.CLINICIAN),
    ("POST", "/infer/segmentation", Role.CLINICIAN),
    ("GET", "/train/", Role.CLINICIAN),
    ("POST", "/train/x", Role.ADMIN),
    ("POST", "/train/", Role.ADMIN),
    ("DELETE", "/train/", Role.ADMIN),
    ("GET", "/auth/", None),
    ("POST", "/auth/token", None),
    ("GET", "/btl/studies/x/report", Role.CLINICIAN),
    ("POST", "/btl/sequences/identify", Role.CLINICIAN),
    ("GET", "/btl/audit", Role.ADMIN),
    ("POST", "/btl/admin/models/v1/serve", Role.ADMIN),
    ("GET", "/btl/models", Role.CLINICIAN),
    ("GET", "/btl/search/similar", Role.CLINICIAN),
    ("GET", "/btl/search", Role.CLINICIAN),
    ("GET", "/btl/patients", Role.CLINICIAN),
    ("GET", "/btl/studies/x/thumbnail", Role.CLINICIAN),
])
def test_role_of_a_served_route(method: str, path: str, role: Role | None) -> None:
    assert role_of(method, path) == role


# --- the middleware ----------------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    principal = request.state.principal
    if principal is None:
        return JSONResponse({"user": None})
    return JSONResponse({"user": principal.user, "roles": sorted(principal.roles)})


def client_for(settings: AuthSettings, verifier: TokenVerifier | None = None,
               base_url: str = "http://127.0.0.1") -> TestClient:
    """Routes of the real table (public /, clinician /info/, annotator PUT /datastore/label, admin
    POST /train/{model}) behind the middleware; ``base_url`` is the address the request arrives on."""
    routes = [Route("/", whoami), Route("/info/", whoami), Route("/datastore/label", whoami, methods=["PUT"]),
              Route("/train/{model}", whoami, methods=["POST"]), Route("/nowhere", whoami)]
    return TestClient(AuthMiddleware(Starlette(routes=routes), settings, role_of, verifier), base_url=base_url)


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
    nowhere = client.get("/nowhere", headers=bearer["admin-client"])  # not in the table: no route, for anyone
    assert nowhere.status_code == 404 and "no route" in nowhere.json()["detail"]
    assert client.get("/nowhere").status_code == 404

    assert client.get("/info/", headers=bearer["clinician-client"]).json() == {
        "user": "clinician-client", "roles": ["clinician"]}
    assert client.put("/datastore/label", headers=bearer["annotator-client"]).status_code == 200
    admin = client.post("/train/segmentation", headers=bearer["admin-client"])
    assert admin.status_code == 200 and admin.json() == {"user": "admin-client", "roles": ["ml_admin"]}
    assert client.get("/").json() == {"user": None}  # public, no token needed


def test_middleware_with_authentication_off_serves_loopback_only() -> None:
    answer = client_for(AuthSettings(mode="off")).post("/train/segmentation")
    assert answer.status_code == 200 and answer.json() == {"user": "local", "roles": sorted(Role)}
    for base_url in ("http://10.1.2.3", "http://[::]", "http://example.org"):  # the address it arrived on
        refused = client_for(AuthSettings(mode="off"), base_url=base_url).get("/info/")
        assert refused.status_code == 403 and "loopback" in refused.json()["detail"]
    proxied = client_for(AuthSettings(mode="off")).get("/info/", headers={"X-Forwarded-For": "10.9.9.9"})
    assert proxied.status_code == 403 and "proxy" in proxied.json()["detail"]


def test_the_application_refuses_what_it_does_not_serve(provider: OidcProvider, verifier: TokenVerifier) -> None:
    client = TestClient(build_app(ServerSettings(), verifier.settings))  # no lifespan: no app instance needed
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/info/").status_code == 401
    clinician = {"Authorization": f"Bearer {provider.token('clinician-client')}"}
    admin = {"Authorization": f"Bearer {provider.token('admin-client')}"}
    for method, path in [("DELETE", "/datastore/?id=x"), ("PUT", "/datastore/label?image=x"),
                         ("POST", "/train/segmentation"), ("GET", "/datastore/dataset")]:
        assert client.request(method, path, headers=clinician).status_code == 403, (method, path)
    for method, path in [("PUT", "/session/"), ("GET", "/logs/"), ("PUT", "/datastore/image/info?image=x")]:
        assert client.request(method, path, headers=admin).status_code == 404, (method, path)
    preflight = {"Origin": "http://viewer.example", "Access-Control-Request-Method": "PUT"}
    assert client.options("/datastore/label", headers=preflight).status_code == 404  # no CORS origin allowed


def test_cors_allows_the_configured_origins_only(verifier: TokenVerifier) -> None:
    client = TestClient(build_app(ServerSettings(cors_origins=("https://viewer.example",)), verifier.settings))
    allowed = client.options("/info/", headers={"Origin": "https://viewer.example",
                                                "Access-Control-Request-Method": "GET"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://viewer.example"
    other = client.get("/auth/", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    with pytest.raises(ValueError, match="BTL_CORS_ORIGINS"):
        ServerSettings.from_environment({"BTL_CORS_ORIGINS": "*"})


# --- key downloads and claims the real provider never sends ------------------------------


@pytest.fixture
def own_issuer() -> Iterator[OwnIssuer]:
    with own_oidc_issuer(AUDIENCE) as issuer:
        yield issuer


def test_dates_must_be_numbers_and_lifetimes_bounded(own_issuer: OwnIssuer) -> None:
    verifier = TokenVerifier(oidc_settings(own_issuer.url, max_token_lifetime_s=3600.0))
    assert verifier.verify(own_issuer.token()).user == "dr.own"
    with pytest.raises(AuthenticationError, match="'exp' is not a number"):
        verifier.verify(own_issuer.token(exp=str(int(time.time()) + 300)))  # PyJWT alone takes "1733..."
    with pytest.raises(AuthenticationError, match="'iat' is not a number"):
        verifier.verify(own_issuer.token(iat=str(int(time.time()))))
    with pytest.raises(AuthenticationError, match="lifetime"):
        verifier.verify(own_issuer.token(exp=int(time.time()) + 10 * 365 * 86400))  # valid for ten years
    with pytest.raises(AuthenticationError, match="lifetime"):  # no iat: the time left counts
        verifier.verify(jwt.encode({"iss": own_issuer.url, "aud": AUDIENCE, "exp": int(time.time()) + 86400 * 30},
                                   own_issuer.key, algorithm="RS256", headers={"kid": "own-key"}))


@pytest.mark.timeout(60)
def test_forged_key_ids_cost_one_download_per_cooldown_and_valid_tokens_never_wait(own_issuer: OwnIssuer) -> None:
    import concurrent.futures

    verifier = TokenVerifier(oidc_settings(own_issuer.url, timeout_s=2.0, key_cooldown_s=30.0))
    valid = own_issuer.token()
    assert verifier.verify(valid).roles == {Role.CLINICIAN}  # keys cached
    own_issuer.delay_s = 5.0  # the provider turns slow: every answer takes longer than the timeout
    downloads = own_issuer.jwks_requests
    forged_tokens = [forged({"iss": own_issuer.url, "aud": AUDIENCE, "exp": time.time() + 60}, kid=f"forged-{i}")
                     for i in range(8)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        refusals = [pool.submit(verifier.verify, token) for token in forged_tokens]
        time.sleep(0.2)  # a refresh is under way now
        checked = time.monotonic()
        assert verifier.verify(valid).user == "dr.own"
        valid_s = time.monotonic() - checked
        for refusal in refusals:
            with pytest.raises(AuthenticationError, match="does not publish"):
                refusal.result()
    assert valid_s < 1.0  # a cached key never waits for the provider (a download would take 2 s)
    assert time.monotonic() - started < 2.0 + 2.0  # one attempt, bounded by the timeout; the others at once
    assert own_issuer.jwks_requests - downloads <= 1
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="does not publish"):
        verifier.verify(forged({"iss": own_issuer.url, "aud": AUDIENCE, "exp": time.time() + 60}, kid="later"))
    assert time.monotonic() - started < 1.0  # within the cooldown: no download (2 s), whatever the last outcome
