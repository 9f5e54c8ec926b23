"""Start a real OpenID Connect provider (tests/oidc_provider, panva's oidc-provider on Node.js)
on loopback for a test, get access tokens from it, and stop it; and :class:`OwnIssuer`, a minimal
issuer whose key the test holds, for tokens no real provider issues."""

from __future__ import annotations

import http.server
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"

#: The provider's clients, by the role their tokens carry ("wrongaud" tokens are for another API).
CLIENTS = ("clinician-client", "annotator-client", "admin-client", "norole-client", "wrongaud-client")

# no proxy from the environment for a provider on loopback
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class OidcProvider:
    """A running provider: its issuer URL, the audience its tokens name by default, the
    lifetime of its access tokens, and its process (which :meth:`pause` freezes)."""

    issuer: str
    audience: str
    token_ttl_s: int
    port: int
    pid: int

    def pause(self) -> None:
        """Freeze the provider (SIGSTOP): connections open but nothing answers, like a hung
        identity provider."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def token(self, role_client: str, audience: str | None = None) -> str:
        """An access token (a JWT) for ``role_client`` (one of :data:`CLIENTS`) by the
        client_credentials grant, for ``audience``, else for the client's default audience
        (the provider's, "other-api" for wrongaud-client)."""
        form = {"grant_type": "client_credentials", "client_id": role_client, "client_secret": f"{role_client}-secret"}
        if audience is not None:
            form["resource"] = audience if ":" in audience else f"urn:audience:{audience}"
        request = urllib.request.Request(f"{self.issuer}/token", data=urllib.parse.urlencode(form).encode())
        try:
            with _OPENER.open(request, timeout=10) as response:
                return str(json.load(response)["access_token"])
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"token request for {role_client} refused: {exc.code} {exc.read()[:500]!r}") from None


@contextmanager
def oidc_provider(audience: str = "braintumorlabel", token_ttl_s: int = 300, port: int = 0,
                  timeout_s: float = 30.0) -> Iterator[OidcProvider]:
    """Run ``node tests/oidc_provider/provider.mjs`` on 127.0.0.1 (``port`` 0: a free one) with
    fresh signing keys, tokens for ``audience`` valid ``token_ttl_s`` seconds; stop it on exit."""
    node = shutil.which("node")
    if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError(f"the test OIDC provider needs Node.js and {PROVIDER_DIR}/node_modules: run `make test` "
                           f"(or `npm ci` in {PROVIDER_DIR})")
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen([node, "provider.mjs", str(port), audience, str(token_ttl_s)], cwd=PROVIDER_DIR,
                                stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
        try:
            issuer = _wait_ready(proc, stderr, timeout_s)
            yield OidcProvider(issuer=issuer, audience=audience, token_ttl_s=token_ttl_s,
                               port=int(issuer.rsplit(":", 1)[1]), pid=proc.pid)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a paused provider stops on SIGTERM once resumed
            _stop(proc)


class OwnIssuer:
    """A minimal OpenID issuer on loopback (discovery and JWKS over HTTP) whose RSA key the test
    holds, so that it can sign tokens no real provider issues; ``jwks_requests`` counts the key
    downloads, ``delay_s`` slows each answer."""

    def __init__(self, audience: str) -> None:
        self.audience = audience
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**public, "kid": "own-key", "alg": "RS256", "use": "sig"}]}
        self.jwks_requests, self.delay_s = 0, 0.0
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                time.sleep(issuer.delay_s)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_requests += 1
                    body = issuer.jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, **claims: Any) -> str:
        """A token for a clinician, valid 5 minutes, with ``claims`` changed or added."""
        now = time.time()
        claims = {"iss": self.url, "aud": self.audience, "sub": "dr.own", "iat": int(now), "exp": int(now) + 300,
                  "roles": ["clinician"], **claims}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "own-key"})


@contextmanager
def own_oidc_issuer(audience: str = "braintumorlabel") -> Iterator[OwnIssuer]:
    """Run an :class:`OwnIssuer` on loopback for the block."""
    issuer = OwnIssuer(audience)
    try:
        yield issuer
    finally:
        issuer.server.shutdown()


def _wait_ready(proc: subprocess.Popen[bytes], stderr: IO[bytes], timeout_s: float) -> str:
    """The issuer from the provider's first line "READY <issuer>", within ``timeout_s``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    line = b""
    while not line.endswith(b"\n"):
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0 or not select.select([proc.stdout], [], [], remaining_s)[0]:
            raise RuntimeError(f"OIDC provider not ready in {timeout_s} s:\n{_tail(stderr)}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            proc.wait(timeout=5)
            raise RuntimeError(f"OIDC provider exited with {proc.returncode}:\n{_tail(stderr)}")
        line += chunk
    word, _, issuer = line.decode().partition("\n")[0].partition(" ")
    if word != "READY" or not issuer.startswith("http://127.0.0.1:"):
        raise RuntimeError(f"OIDC provider said {line!r}:\n{_tail(stderr)}")
    return issuer


def _tail(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    return stderr.read()[-3000:].decode(errors="replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
