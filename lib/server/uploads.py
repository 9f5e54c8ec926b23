"""Uploaded files, as the server keeps them while it works on a request.

:func:`received` saves an upload in a folder of its own under the system temporary folder and
deletes that folder when the request's work ends, whatever happens (a refused upload leaves
nothing behind: no patient image lingers in /tmp). The file keeps the client's own file name
(its last part, in safe characters), so an error names what the client sent, never a server
path. :func:`check_decoded_size` refuses, from the header alone, an image whose voxels would
take more memory than the server allows.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import UploadFile

from lib.transforms.io import IMAGE_EXTENSIONS

#: Characters kept in an upload's file name; anything else becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: The folder prefix of uploads under the system temporary folder.
PREFIX = "btl-upload-"


def safe_name(filename: str | None, default: str) -> str:
    """The last part of a client's file name in letters, digits, '.', '_' and '-' (at most 100),
    with its image extension; ``default`` when it has none."""
    name = _UNSAFE.sub("_", Path(filename or "").name)[-100:].lstrip(".")
    if not any(name.lower().endswith(ext) for ext in IMAGE_EXTENSIONS):
        return default
    return name


@contextmanager
def received(upload: UploadFile, default_name: str = "upload.nii.gz") -> Iterator[Path]:
    """The upload as a file in a new folder under the system temporary folder, removed with
    the folder when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        path = folder / safe_name(upload.filename, default_name)
        with open(path, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)

