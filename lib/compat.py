"""Compatibility shims for pinned third-party packages, applied in one place.

``highdicom_on_numpy2``: highdicom 0.22 is the last release on pydicom 2, which MONAI Label's
``pydicom-seg`` needs, and it still names ``np.float_``, an alias NumPy 2 removed, when it builds
a SEG from a pixel array (``highdicom/seg/sop.py``). The alias is restored once, where a process
starts: the ``main`` of every console script (``btl-server``, ``btl-batch``, ``btl-worker``,
``btl-report``, ``btl-search``), the MONAI Label app's constructor (MONAI Label's background
processes build the app without them) and the test suite's ``conftest.py`` call
:func:`highdicom_on_numpy2`; importing a module of ``lib`` changes nothing in NumPy.
:func:`lib.dicom.seg.label_to_seg` raises :class:`ShimNotAppliedError` in a process that did not
call it. It can go when the project moves to pydicom 3 and highdicom >= 0.23 (which
no longer use the alias), i.e. when MONAI Label no longer needs ``pydicom-seg``.
"""

from __future__ import annotations

import numpy as np


class ShimNotAppliedError(RuntimeError):
    """A process builds a DICOM SEG without having called :func:`highdicom_on_numpy2` at its start."""


def require_highdicom_on_numpy2() -> None:
    """Raise :class:`ShimNotAppliedError` unless :func:`highdicom_on_numpy2` has run (or NumPy has
    the alias of its own)."""
    if not hasattr(np, "float_"):
        raise ShimNotAppliedError("highdicom 0.22 needs np.float_: call lib.compat.highdicom_on_numpy2() "
                                  "where the process starts (see lib/compat.py)")


def highdicom_on_numpy2() -> None:
    """Give NumPy 2 the ``np.float_`` alias (= ``np.float64``) that highdicom 0.22 uses."""
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
