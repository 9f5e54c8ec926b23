"""The server's limits, read once from the environment: one place for each default.

Every variable is optional; a value that cannot work is refused at start with its name.

| variable | default | what it bounds |
|---|---|---|
| ``BTL_INFERENCE_WORKERS`` / ``BTL_INFERENCE_QUEUE`` | 1 / 4 | inferences running / waiting (503 past that) |
| ``BTL_LABEL_WORKERS`` / ``BTL_LABEL_QUEUE`` | 1 / 4 | label and study uploads being checked / waiting |
| ``BTL_MAX_UPLOAD_MB`` | 1024 | a request body (413), by its Content-Length or as it streams |
| ``BTL_MAX_DECODED_MB`` | 512 | the voxels an uploaded image or label declares, decoded (413, from its header) |
| ``BTL_HEADER_TIMEOUT_S`` | 10 | the time a client has to send a request's headers (btl-server) |
| ``BTL_BODY_GRACE_S`` / ``BTL_BODY_MIN_RATE_KIB_S`` | 10 / 16 | a body's mean rate after 10 s (408 below it) |
| ``BTL_KEEP_ALIVE_S`` | 5 | an idle keep-alive connection is closed |
| ``BTL_MAX_CONNECTIONS`` | 64 | open connections and requests in progress (503 past that) |
| ``BTL_LOGIN_ATTEMPTS_PER_MIN`` | 10 | ``POST /auth/token`` per client address and per user name (429) |
| ``BTL_CORS_ORIGINS`` | none | browser origins allowed to call the API (comma-separated) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ServerSettings:
    """The limits of the table above (see the module docstring)."""

    inference_workers: int = 1
    inference_queue: int = 4
    label_workers: int = 1
    label_queue: int = 4
    max_upload_mb: float = 1024.0
    max_decoded_mb: float = 512.0
    header_timeout_s: float = 10.0
    body_grace_s: float = 10.0
    body_min_rate_kib_s: float = 16.0
    keep_alive_s: int = 5
    max_connections: int = 64
    login_attempts_per_min: int = 10
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        positive = ("inference_workers", "label_workers", "max_upload_mb", "max_decoded_mb", "header_timeout_s",
                    "body_min_rate_kib_s", "keep_alive_s", "max_connections", "login_attempts_per_min")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{_VARIABLE[name]} must be positive, not {getattr(self, name)!r}")
        for name in ("inference_queue", "label_queue", "body_grace_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{_VARIABLE[name]} must be zero or more, not {getattr(self, name)!r}")
        for origin in self.cors_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
                    or "*" in origin:
                raise ValueError(f"BTL_CORS_ORIGINS: {origin!r} is not an origin such as https://viewer.example.org "
                                 "(scheme and host, no path, no wildcard)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_decoded_bytes(self) -> int:
        return int(self.max_decoded_mb * 2**20)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Settings from the ``BTL_*`` variables of the module docstring; ValueError naming a bad one."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, variable in _VARIABLE.items():
            text = env.get(variable, "").strip()
            if not text:
                continue
            if name == "cors_origins":
                values[name] = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
                continue
            kind = type(getattr(cls, name))
            try:
                values[name] = kind(text)
            except ValueError:
                raise ValueError(f"{variable} must be {'an integer' if kind is int else 'a number'}, "
                                 f"not {text!r}") from None
        return cls(**values)


#: Field -> the environment variable that sets it.
_VARIABLE = {
    "inference_workers": "BTL_INFERENCE_WORKERS",
    "inference_queue": "BTL_INFERENCE_QUEUE",
    "label_workers": "BTL_LABEL_WORKERS",
    "label_queue": "BTL_LABEL_QUEUE",
    "max_upload_mb": "BTL_MAX_UPLOAD_MB",
    "max_decoded_mb": "BTL_MAX_DECODED_MB",
    "header_timeout_s": "BTL_HEADER_TIMEOUT_S",
    "body_grace_s": "BTL_BODY_GRACE_S",
    "body_min_rate_kib_s": "BTL_BODY_MIN_RATE_KIB_S",
    "keep_alive_s": "BTL_KEEP_ALIVE_S",
    "max_connections": "BTL_MAX_CONNECTIONS",
    "login_attempts_per_min": "BTL_LOGIN_ATTEMPTS_PER_MIN",
    "cors_origins": "BTL_CORS_ORIGINS",
}
