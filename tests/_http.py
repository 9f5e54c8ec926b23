"""HTTP requests to a test server, in the shape the endpoints take, answering (status, body)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid


def call(url: str, method: str, path: str, fields: dict[str, str] | None = None,
         files: dict[str, bytes] | None = None, body: bytes | None = None,
         content_type: str | None = None, token: str | None = None) -> tuple[int, bytes]:
    """One request (multipart ``fields``/``files``, or a raw ``body``; a bearer ``token``);
    returns (status, body) for any answer, errors included."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if fields is not None or files is not None:
        boundary = uuid.uuid4().hex
        chunks = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                  for k, v in (fields or {}).items()]
        chunks += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{k}.nii.gz"\r\n'
                   f"Content-Type: application/octet-stream\r\n\r\n".encode() + v + b"\r\n"
                   for k, v in (files or {}).items()]
        body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def detail(answer: tuple[int, bytes]) -> str:
    """The reason FastAPI gives in ``{"detail": ...}``."""
    return str(json.loads(answer[1]).get("detail", ""))
