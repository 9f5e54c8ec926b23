"""Loopback networking helpers shared by the private Orthanc, torch.distributed and the tests."""

from __future__ import annotations

import socket


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it; a race with another
    process binding it before the caller is possible but harmless for our uses)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
