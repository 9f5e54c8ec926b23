"""A private RabbitMQ for tests and benchmarks: its own node name, ports, data folder and user.

Needs the Debian package ``rabbitmq-server`` (``make test`` installs it). The broker listens on
``address`` only (loopback by default, or a test host's address inside a network namespace,
``netns``), its Erlang distribution and port mapper on loopback. :meth:`RabbitSandbox.restart`
stops and starts the same node on the same data: durable queues and persistent messages survive.

    python -m lib.jobs.sandbox [--port 5672]      # runs until Ctrl+C, prints the broker URL
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lib.net import free_loopback_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = shutil.which("epmd") or "/usr/bin/epmd"


@dataclass
class RabbitSandbox:
    """A running private broker; ``url`` is what ``BTL_BROKER_URL`` takes."""

    folder: Path
    address: str
    port: int
    user: str
    password: str
    netns: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@{self.address}:{self.port}//"

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def _environment(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.folder), "LANG": "C.UTF-8",
                "RABBITMQ_NODENAME": f"btl{self.port}@localhost",
                "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"), "RABBITMQ_LOG_BASE": str(self.folder / "log"),
                "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
                "RABBITMQ_DIST_PORT": str(self.port + 1), "ERL_EPMD_PORT": str(self.port + 2),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}

    def start(self, timeout_s: float = 120.0) -> RabbitSandbox:
        """Start the node and wait until it takes connections; RuntimeError with its log otherwise."""
        log = open(self.folder / "rabbitmq.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen([*self._prefix(), RABBITMQ_SERVER], env=self._environment(), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = (self.folder / "rabbitmq.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"RabbitMQ did not start:\n{text}")
            time.sleep(0.5)
        return self

    def _listening(self) -> bool:
        if self.netns:
            probe = subprocess.run([*self._prefix(), "python3", "-c",
                                    f"import socket; socket.create_connection(('{self.address}', {self.port}), 1)"],
                                   capture_output=True)
            return probe.returncode == 0 and "Server startup complete" in self._log()
        try:
            with socket.create_connection((self.address, self.port), timeout=1):
                return "Server startup complete" in self._log()
        except OSError:
            return False

    def _log(self) -> str:
        return (self.folder / "rabbitmq.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop the node (and its port mapper); the data folder stays (see :meth:`close`)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        subprocess.run([*self._prefix(), EPMD, "-kill"], env=self._environment(), capture_output=True)

    def kill(self) -> None:
        """SIGKILL the node, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the node and delete its data."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RabbitSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_rabbitmq(address: str = "127.0.0.1", port: int | None = None, netns: str | None = None,
                   timeout_s: float = 120.0) -> RabbitSandbox:
    """A private RabbitMQ on ``address`` (in network namespace ``netns`` if given), with a new
    user and password and data in a new temporary folder. RuntimeError when RabbitMQ is not
    installed or does not come up."""
    if not Path(RABBITMQ_SERVER).exists():
        raise RuntimeError("RabbitMQ is not installed (Debian package 'rabbitmq-server'; make test installs it)")
    folder = Path(tempfile.mkdtemp(prefix="btl-rabbitmq-"))
    port = port or _free_port_triple()
    sandbox = RabbitSandbox(folder, address, port, "btl", secrets.token_urlsafe(12), netns)
    (folder / "rabbitmq.conf").write_text("\n".join([
        f"listeners.tcp.1 = {address}:{port}", f"default_user = {sandbox.user}",
        f"default_pass = {sandbox.password}", "loopback_users = none", "log.console = true", "log.file = false",
        "disk_free_limit.absolute = 50MB", "heartbeat = 10", ""]))
    (folder / "enabled_plugins").write_text("[].\n")
    (folder / "rabbitmq-env.conf").write_text("")
    (folder / ".erlang.cookie").write_text(secrets.token_hex(16))
    (folder / ".erlang.cookie").chmod(0o400)
    return sandbox.start(timeout_s)


def _free_port_triple() -> int:
    """A port P with P, P+1 and P+2 free on loopback (the broker, its distribution, its mapper)."""
    for _ in range(50):
        port = free_loopback_port()
        if port + 2 < 65536 and all(_free(port + i) for i in (1, 2)):
            return port
    raise RuntimeError("no three consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args()
    with start_rabbitmq(port=args.port) as broker:
        print(f"RabbitMQ ready: BTL_BROKER_URL={broker.url}", flush=True)
        try:
            broker.process.wait() if broker.process else None
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
