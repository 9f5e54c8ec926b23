"""Start a real OpenID Connect provider (tests/oidc_provider, panva's oidc-provider on Node.js)
on loopback for a test, get access tokens from it, and stop it."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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
