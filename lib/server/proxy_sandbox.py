"""A private nginx in front of several ``btl-server`` processes, for tests and benchmarks.

Its configuration is the one :func:`proxy_config` writes, which docs/deployment.md shows for a
team deployment (there with TLS): requests go to the server with the fewest open ones, bodies up
to the servers' limit, reads that wait as long as a segmentation, the client's address passed on
in ``X-Forwarded-For``. It listens on loopback; its logs, pid and buffers live in its own
temporary folder; the access log names the upstream server of each request. Needs the Debian
package ``nginx`` (``make test`` installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lib.net import free_loopback_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def proxy_config(upstreams: list[str], listen: str, folder: Path, max_body_mb: int = 1024,
                 read_timeout_s: int = 660) -> str:
    """An nginx configuration proxying ``listen`` (host:port) to the ``upstreams`` (host:port)."""
    servers = "\n".join(f"        server {address} max_fails=1 fail_timeout=5s;" for address in upstreams)
    temp = "\n".join(f"    {name}_temp_path {folder / name};" for name in ("client_body", "proxy", "fastcgi",
                                                                              "uwsgi", "scgi"))
    return f"""worker_processes 1;
daemon off;
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'} warn;
events {{ worker_connections 512; }}
http {{
    log_format upstream '$remote_addr "$request" $status $upstream_addr $request_time';
    access_log {folder / 'access.log'} upstream;
{temp}
    upstream btl {{
        least_conn;
{servers}
        keepalive 32;
    }}
    server {{
        listen {listen};
        client_max_body_size {max_body_mb}m;
        proxy_read_timeout {read_timeout_s}s;
        proxy_send_timeout {read_timeout_s}s;
        location / {{
            proxy_pass http://btl;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout http_502;
        }}
    }}
}}
"""


@dataclass
class ProxySandbox:
    process: subprocess.Popen
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def upstreams_used(self) -> dict[str, int]:
        """Upstream address -> requests it answered, from the access log."""
        counts: dict[str, int] = {}
        for line in (self.folder / "access.log").read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and ":" in parts[-2]:
                counts[parts[-2]] = counts.get(parts[-2], 0) + 1
        return counts

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)  # graceful: finish the requests in flight
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ProxySandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_proxy(upstreams: list[str], timeout_s: float = 30.0) -> ProxySandbox:
    """nginx on a free loopback port in front of ``upstreams``; RuntimeError with its log when it
    does not start."""
    if not Path(NGINX).exists():
        raise RuntimeError("nginx is not installed (Debian package 'nginx'; make test installs it)")
    folder = Path(tempfile.mkdtemp(prefix="btl-nginx-"))
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / name).mkdir(mode=0o777)
        (folder / name).chmod(0o777)  # nginx's workers may run as another user
    folder.chmod(0o755)
    port = free_loopback_port()
    (folder / "nginx.conf").write_text(proxy_config(upstreams, f"127.0.0.1:{port}", folder))
    process = subprocess.Popen([NGINX, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=open(folder / "stderr.log", "wb"),  # noqa: SIM115
                               start_new_session=True)
    sandbox = ProxySandbox(process, folder, port)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return sandbox
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = "".join((folder / f).read_text(errors="replace") for f in ("stderr.log", "error.log")
                              if (folder / f).exists())
                sandbox.stop()
                raise RuntimeError(f"nginx did not start:\n{log[-3000:]}") from None
            time.sleep(0.2)
