"""Start a real MONAI Label server process on this app for a test module, and stop it.

Standard library only: the Slicer Lib tests import it from Slicer's Pythons too. The server runs
from the project's venv: ``btl-server`` beside ``BTL_SERVER_PYTHON``, else beside this Python."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _server_side import server_python

REPO = Path(__file__).resolve().parents[1]


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (as ``lib.net``'s, which a client venv cannot import)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def monailabel_server(studies: Path | str, log: Path, conf: dict[str, str] | None = None,
                      env: dict[str, str] | None = None, timeout_s: float = 120.0) -> Iterator[str]:
    """Yield the URL of a ``monailabel start_server`` process serving ``monailabel_app`` on
    ``studies``; its output goes to ``log``. The process is stopped on exit."""
    with monailabel_process(studies, log, conf, env, timeout_s) as (url, _):
        yield url


@contextmanager
def monailabel_process(studies: Path | str, log: Path, conf: dict[str, str] | None = None,
                       env: dict[str, str] | None = None,
                       timeout_s: float = 120.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """:func:`monailabel_server`, yielding the process too (its group can be killed)."""
    port = free_loopback_port()
    bin_dir = server_python().parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
           **(env or {})}
    cmd = [str(bin_dir / "btl-server"), "--studies", str(studies), "--host", "127.0.0.1", "--port", str(port)]
    for key, value in (conf or {}).items():
        cmd += ["--conf", key, value]
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/auth/", timeout=5) as response:  # public
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not answer in {timeout_s} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield url, proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
