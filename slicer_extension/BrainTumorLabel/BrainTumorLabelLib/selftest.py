"""The server the module's self-test (``BrainTumorLabelTest``) runs against (standard library only).

``BTL_SERVER_URL``: a server already running (e.g. ``make run``). ``BTL_SERVER_COMMAND``: a
command that serves studies, e.g. ``/path/to/braintumorlabel/.venv/bin/btl-server --studies
/path/to/studies``; it is started with ``--host 127.0.0.1 --port <a free port>`` added and
stopped when the test ends. With neither, the self-test says so and does nothing else.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO

SKIP_MESSAGE = ("BrainTumorLabel self-test skipped: it needs a server. Set BTL_SERVER_URL to a running one "
                "(e.g. http://127.0.0.1:8000 from `make run`), or BTL_SERVER_COMMAND to a command that serves "
                "studies (e.g. '/path/to/braintumorlabel/.venv/bin/btl-server --studies /path/to/studies'), "
                "which the test starts with --host 127.0.0.1 --port <a free port>.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def self_test_server(environ: Mapping[str, str], timeout_s: float = 300.0) -> Iterator[str | None]:
    """The URL of the server to test against (see the module docstring), or None when none is given."""
    if environ.get("BTL_SERVER_URL"):
        yield environ["BTL_SERVER_URL"]
        return
    command = environ.get("BTL_SERVER_COMMAND", "")
    if not command.strip():
        yield None
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([*shlex.split(command), "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ready(url, process, log, timeout_s)
            yield url
        finally:
            _stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: IO[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the test server exited with {process.returncode}: "
                               f"{log.read()[-2000:].decode('utf-8', 'replace')}")
        try:
            with urllib.request.urlopen(f"{url}/auth/", timeout=5) as answer:  # public on every server
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test server did not answer on {url} within {timeout_s:g} s")
        time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGTERM)
        else:  # Windows
            process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
