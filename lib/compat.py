"""Compatibility shims for pinned third-party packages, applied in one place.

``highdicom_on_numpy2``: highdicom 0.22 is the last release on pydicom 2, which MONAI Label's
``pydicom-seg`` needs, and it still names ``np.float_``, an alias NumPy 2 removed. The alias is
restored once, before highdicom is imported (by :mod:`lib.dicom.seg`, the one module that
imports highdicom). It can go when the project moves to pydicom 3 and highdicom >= 0.23 (which
no longer use the alias), i.e. when MONAI Label no longer needs ``pydicom-seg``.
"""

from __future__ import annotations

import numpy as np


def highdicom_on_numpy2() -> None:
    """Give NumPy 2 the ``np.float_`` alias (= ``np.float64``) that highdicom 0.22 uses."""
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
