"""The ``/auth`` routes: whether a login is needed, a password login for clients without a
browser (3D Slicer), and a token check."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request

from .auth import AuthenticationError, AuthSettings, TokenVerifier
from .errors import http_errors
from .limits import LoginThrottle


def build_router(auth: AuthSettings, verifier: TokenVerifier | None, throttle: LoginThrottle) -> APIRouter:
    router = APIRouter(prefix="/auth")

    @router.get("/", summary="Whether the server requires a login, and with which provider")
    def auth_info() -> dict[str, Any]:
        return {"enabled": auth.mode == "oidc", "issuer": auth.issuer, "audience": auth.audience,
                "client_id": auth.client_id}

    @router.post("/token", summary="Log in with a user name and password (the provider's password grant)")
    def login(request: Request, username: str = Form(..., max_length=256),
              password: str = Form(..., max_length=1024)) -> dict[str, Any]:
        """The server asks the identity provider for a token with the password grant, where the
        provider allows it (Keycloak does). At most ``BTL_LOGIN_ATTEMPTS_PER_MIN`` attempts per
        client address and per user name (429 past that). A refusal is a 401 with the
        provider's reason; the password is neither logged nor returned."""
        if verifier is None:
            return {"access_token": None, "token_type": None}
        with http_errors():
            throttle.check(request.client.host if request.client else "?", username)
        try:
            endpoint = str(verifier.provider_metadata()["token_endpoint"])
        except (AuthenticationError, KeyError) as exc:
            raise HTTPException(503, f"the identity provider cannot be reached: {exc}") from None
        form = {"grant_type": "password", "username": username, "password": password, "scope": "openid",
                "client_id": auth.client_id or ""}
        upstream = urllib.request.Request(endpoint, data=urllib.parse.urlencode(form).encode(), method="POST")
        try:
            with urllib.request.urlopen(upstream, timeout=auth.timeout_s) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            reason = _provider_reason(error.read())
            raise HTTPException(401, f"login refused by the identity provider{': ' + reason if reason else ''}",
                                headers={"WWW-Authenticate": "Bearer"}) from None
        except (OSError, ValueError) as error:
            raise HTTPException(503, f"the identity provider cannot be reached ({type(error).__name__})") from None
        return {"access_token": answer.get("access_token"), "token_type": answer.get("token_type", "Bearer"),
                "expires_in": answer.get("expires_in")}

    @router.get("/token/valid", summary="Whether the request's token is valid (it got past authentication)")
    def token_valid() -> dict[str, Any]:
        return {}

    return router


def _provider_reason(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    return str(answer.get("error_description") or answer.get("error") or "")[:200] if isinstance(answer, dict) else ""
