"""Typed errors for bad input. Each names the case and, where there is one, the file.

The server maps these to 4xx responses; callers catch ``InputError`` for all of them.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Input that cannot be processed as given. Message names the case and the file."""

    def __init__(self, problem: str, case_id: str | None = None, path: str | Path | None = None):
        self.problem = problem
        self.case_id = case_id
        self.path = str(path) if path is not None else None
        where = []
        if case_id is not None:
            where.append(f"case '{case_id}'")
        if self.path is not None:
            where.append(f"file '{self.path}'")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


class MissingSequenceError(InputError):
    """A required MRI sequence (t1n, t1c, t2w, t2f) is absent from the case."""


class UnreadableImageError(InputError):
    """A file exists but cannot be read as an image (corrupt, truncated, wrong format)."""


class ImageTooLargeError(InputError):
    """An image whose header declares more voxels than the server accepts (checked before any
    voxel is read, so a small compressed file cannot claim gigabytes of memory)."""


class InvalidGeometryError(InputError):
    """An image has the wrong dimensionality (2D or 4D where 3D is expected) or a degenerate grid."""


class NonFiniteVoxelsError(InputError):
    """An image contains NaN or infinite voxel values."""


class RegistrationError(InputError):
    """Sequences could not be co-registered (no overlap, or the optimiser did not converge)."""


class InvalidLabelError(InputError):
    """A label map has values outside {0, 1, 2, 3} or lies on another grid than its case."""


class UnknownIdError(LookupError):
    """An image id, label or version that the datastore does not have."""


class ConflictError(RuntimeError):
    """The request would overwrite something stored (an existing image id, a label version)."""


class PacsUnavailableError(RuntimeError):
    """The PACS cannot be reached, times out, answers with a server error or refuses the
    credentials. The message names the PACS and the operation, never the credentials."""


class PacsRefusedError(PacsUnavailableError):
    """The PACS answered but refused this object for good (a 4xx other than auth and
    throttling, or a failed instance in a STOW-RS answer): retrying will not help."""


class ModelUnavailableError(RuntimeError):
    """No usable model checkpoint: a deployment problem, not the request's."""
