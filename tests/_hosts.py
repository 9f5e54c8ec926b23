"""Hosts of a test's own: network namespaces joined by a bridge, each with its own address.

:class:`HostNetwork` makes a switch (a namespace holding a bridge) and hosts (a namespace each,
with a veth to the bridge and an address 10.231.<net>.<n>/24 on it, and its own loopback).
Traffic stays inside these namespaces: nothing is routed to the machine's own network. A host
runs processes (``ip netns exec``), can lose its link (:meth:`Host.link_down`) and get it back.
Everything is removed on :meth:`HostNetwork.close` (processes killed, namespaces deleted).
Needs root and iproute2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def popen(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``command`` on this host, its output in ``log``."""
        environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        with open(log, "ab") as out:
            process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *command], env=environment,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
        self.processes.append(process)
        return process

    def run(self, command: list[str], timeout_s: float = 120.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run(["ip", "netns", "exec", self.namespace, *command], env=environment, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout_s)

    def python(self, code: str, timeout_s: float = 120.0) -> str:
        """Run Python ``code`` on this host (the suite's interpreter); its standard output."""
        done = self.run([sys.executable, "-c", code], timeout_s)
        if done.returncode:
            raise RuntimeError(f"on {self.name}: {done.stderr[-3000:]}")
        return done.stdout

    def link_down(self) -> None:
        _ip("-n", self.namespace, "link", "set", "eth0", "down")

    def link_up(self) -> None:
        _ip("-n", self.namespace, "link", "set", "eth0", "up")

    def stop(self) -> None:
        """Stop every process started here: SIGINT (each cleans up), then SIGKILL after 20 s."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGCONT)
                    os.killpg(process.pid, signal.SIGINT)
                except ProcessLookupError:
                    continue
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()


class HostNetwork:
    """A switch and the hosts on it (see the module docstring)."""

    def __init__(self, subnet: int) -> None:
        self.tag = f"btl{os.getpid() % 100000}"
        self.subnet = subnet
        self.switch = f"{self.tag}-sw"
        self.hosts: dict[str, Host] = {}
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def add(self, name: str) -> Host:
        number = len(self.hosts) + 2
        namespace = f"{self.tag}-{name}"
        _ip("netns", "add", namespace)
        _ip("-n", self.switch, "link", "add", f"v-{name}"[:15], "type", "veth", "peer", "name", "eth0", "netns",
            namespace)
        _ip("-n", self.switch, "link", "set", f"v-{name}"[:15], "master", "br0", "up")
        address = f"10.231.{self.subnet}.{number}"
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        host = Host(name, namespace, address)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            host.stop()
        for namespace in [h.namespace for h in self.hosts.values()] + [self.switch]:
            pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
            for pid in pids:  # anything left (an Erlang port mapper)
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


@contextmanager
def host_network(*names: str, subnet: int = 1) -> Iterator[dict[str, Host]]:
    """Hosts named ``names`` on one switch, removed after the block."""
    network = HostNetwork(subnet)
    try:
        for name in names:
            network.add(name)
        yield network.hosts
    finally:
        network.close()


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.5):  # type: ignore[no-untyped-def]
    """``condition()``'s first true value within ``timeout_s``; AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"{what}: not within {timeout_s} s")
