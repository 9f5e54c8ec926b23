"""Correction effort: how far each ``final`` label moved from the model output it corrected.

For every final version of a study, the *original* it started from is the newest model output
(``original`` version) saved before it, preferring one of the model version the client named.
Per region (WT, TC, ET: nested regions, never raw label values): Dice, surface Dice at
:data:`SURFACE_TOLERANCE_MM` (the share of both borders within that distance of the other,
so a redrawn border counts even where the overlap barely changes), volume change in mL; and
the voxels whose label changed. ``seconds`` is the time from the segmentation to the submit as
the client measured it (None when it did not say). A final drawn with no model output before it
has no row: nothing was corrected.

Rows are computed once per (study, final version) and kept in a JSON file; the summary per
model version is what tells the ML team whether a new model needs less correcting.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from lib.atomic import read_json, write_json
from lib.datastore.base import FINAL, ORIGINAL, StudyDatastore
from lib.datastore.labels import LabelVersion
from lib.errors import InvalidGeometryError
from lib.evaluation import region_dice
from lib.postprocessing import REGION_ORDER, labels_to_regions
from lib.transforms import Grid

#: Border distance (mm) within which a corrected border counts as unchanged (surface Dice).
SURFACE_TOLERANCE_MM = 2.0


@dataclass(frozen=True)
class CorrectionEffort:
    study: str
    final_version: int
    original_version: int
    model_version: str | None
    annotator: str | None
    dice: dict[str, float]
    surface_dice: dict[str, float]
    volume_change_ml: dict[str, float]
    voxels_changed: int
    seconds: float | None

    @property
    def unchanged(self) -> bool:
        return self.voxels_changed == 0


def surface_dice(a: np.ndarray, b: np.ndarray, spacing_mm: tuple[float, ...],
                 tolerance_mm: float = SURFACE_TOLERANCE_MM) -> float:
    """Surface Dice of two boolean masks (same shape; ``spacing_mm`` per array axis): border
    voxels of each within ``tolerance_mm`` of the other's border, over all border voxels.
    1.0 when both are empty, 0.0 when only one is."""
    border_a, border_b = a & ~ndimage.binary_erosion(a), b & ~ndimage.binary_erosion(b)
    if not border_a.any() and not border_b.any():
        return 1.0
    if not border_a.any() or not border_b.any():
        return 0.0
    to_b = ndimage.distance_transform_edt(~border_b, sampling=spacing_mm)
    to_a = ndimage.distance_transform_edt(~border_a, sampling=spacing_mm)
    close = int((to_b[border_a] <= tolerance_mm).sum() + (to_a[border_b] <= tolerance_mm).sum())
    return close / float(border_a.sum() + border_b.sum())


def compare(original: sitk.Image, final: sitk.Image) -> dict[str, Any]:
    """Dice, surface Dice, volume change (mL) per region and voxels changed, ``final`` against
    ``original`` (two BraTS labels on one grid; :class:`InvalidGeometryError` otherwise)."""
    if not Grid.of(original).matches(Grid.of(final)):
        raise InvalidGeometryError("the final label lies on another grid than the model output it corrects")
    before, after = sitk.GetArrayFromImage(original), sitk.GetArrayFromImage(final)
    spacing = tuple(float(s) for s in reversed(original.GetSpacing()))  # array axes are z, y, x
    voxel_ml = float(np.prod(spacing)) / 1000.0
    regions_before, regions_after = labels_to_regions(before) > 0, labels_to_regions(after) > 0
    return {
        "dice": region_dice(after, before),
        "surface_dice": {name: surface_dice(regions_before[i], regions_after[i], spacing)
                         for i, name in enumerate(REGION_ORDER)},
        "volume_change_ml": {name: float(regions_after[i].sum() - regions_before[i].sum()) * voxel_ml
                             for i, name in enumerate(REGION_ORDER)},
        "voxels_changed": int((before != after).sum()),
    }


def _corrected(originals: list[LabelVersion], final: LabelVersion) -> LabelVersion | None:
    """The model output a correction started from: the one the store recorded with it, else
    (older records) the newest one before it of the same model version, else the newest before it."""
    recorded = next((o for o in originals if o.version == final.info.get("original_version")), None)
    if recorded is not None:
        return recorded
    before = [o for o in originals if o.info.get("ts", 0) <= final.info.get("ts", 0)]
    named = [o for o in before if final.info.get("model_version") and
             o.info.get("model_version") == final.info.get("model_version")]
    return max(named or before, key=lambda o: o.version, default=None)


class EffortTable:
    """The effort rows of a datastore, cached in ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def rows(self, store: StudyDatastore) -> list[CorrectionEffort]:
        with self._lock:
            cached = read_json(self.path)
            out, changed = [], False
            for study in sorted(store.get_labeled_images(FINAL)):
                tags = store.label_tags(study)
                originals = store.label_versions(study, ORIGINAL) if ORIGINAL in tags else []
                for final in store.label_versions(study, FINAL):
                    original = _corrected(originals, final)
                    if original is None:
                        continue
                    key = f"{study}|{final.version}|{original.version}"
                    if key not in cached:
                        cached[key] = self._row(store, study, final, original)
                        changed = True
                    out.append(CorrectionEffort(**cached[key]))
            if changed:
                write_json(self.path, cached)
            return out

    @staticmethod
    def _row(store: StudyDatastore, study: str, final: LabelVersion, original: LabelVersion) -> dict[str, Any]:
        def read(tag: str, version: int) -> sitk.Image:
            return sitk.ReadImage(store.label_version_uri(study, tag, version), sitk.sitkUInt8)

        seconds = final.info.get("seconds_since_segmentation")
        return {"study": study, "final_version": final.version, "original_version": original.version,
                "model_version": original.info.get("model_version"), "annotator": final.info.get("user"),
                **compare(read(ORIGINAL, original.version), read(FINAL, final.version)),
                "seconds": float(seconds) if isinstance(seconds, int | float) else None}


def summary(rows: list[CorrectionEffort]) -> dict[str, dict[str, Any]]:
    """Per model version: studies corrected, median Dice and surface Dice per region, median
    volume change (mL), share accepted unchanged, median seconds (of the rows that have it)."""
    out: dict[str, dict[str, Any]] = {}
    for version in sorted({r.model_version or "unknown" for r in rows}):
        mine = [r for r in rows if (r.model_version or "unknown") == version]
        seconds = [r.seconds for r in mine if r.seconds is not None]
        out[version] = {
            "corrections": len(mine),
            "median_dice": {n: statistics.median(r.dice[n] for r in mine) for n in REGION_ORDER},
            "median_surface_dice": {n: statistics.median(r.surface_dice[n] for r in mine) for n in REGION_ORDER},
            "median_volume_change_ml": {n: statistics.median(r.volume_change_ml[n] for r in mine)
                                        for n in REGION_ORDER},
            "accepted_unchanged": sum(r.unchanged for r in mine) / len(mine),
            "median_seconds": statistics.median(seconds) if seconds else None,
        }
    return out


def as_dict(row: CorrectionEffort) -> dict[str, Any]:
    return {**asdict(row), "unchanged": row.unchanged}
