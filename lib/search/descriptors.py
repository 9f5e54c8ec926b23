"""Tumor descriptors of one label: what the measurement filters and the ``tumor`` similarity use.

The volumes, lesion count, hemisphere and midline crossing come from the report's own
measurement (:func:`lib.report.measure.measure`, not computed a second time here). Added:

* the enhancing and necrotic fractions of the tumor core (ET / TC, NCR / TC);
* the tumor's position as an *occupancy map*: the share of the whole tumor in each cell of an
  ``OCCUPANCY_CELLS`` grid laid over the brain's bounding box on the preprocessing's working grid
  (RAS, after its rigid co-registration onto t1c), so that it does not depend on the field of
  view or the voxel size of the acquisition;
* a fixed-length vector of all of it (:func:`tumor_vector`) for nearest-neighbour search.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lib.report.measure import Measurements

#: Cells of the occupancy map along the brain box's x (right-left), y (posterior-anterior) and z axes.
OCCUPANCY_CELLS = (4, 4, 4)

#: Weights of the parts of :func:`tumor_vector` (one place): the occupancy map (Hellinger
#: coordinates, so two maps' distance is at most sqrt(2)), the volumes (natural log of 1 + mL,
#: divided by ``VOLUME_LOG_SCALE``), the composition fractions, the lesion count and laterality.
WEIGHTS = {"occupancy": 1.0, "volumes": 0.6, "composition": 0.4, "lesions": 0.3, "laterality": 0.5}
VOLUME_LOG_SCALE = math.log(101.0)
#: The volumes in the vector, in this order.
VECTOR_VOLUMES = ("WT", "TC", "ET")


@dataclass(frozen=True)
class TumorDescriptors:
    """See the module docstring. Volumes in mL; ``percent_of_brain`` per region; ``hemisphere``
    "left" / "right" (the patient's) or None without tumor; ``occupancy`` flattened (x, y, z)
    C-order over :data:`OCCUPANCY_CELLS`, summing to 1 (all zeros without tumor)."""

    volumes_ml: dict[str, float]
    percent_of_brain: dict[str, float]
    brain_ml: float
    enhancing_fraction: float
    necrotic_fraction: float
    lesion_count: int
    measurable_lesions: int
    hemisphere: str | None
    crosses_midline: bool | None
    occupancy: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["occupancy"] = [round(v, 4) for v in self.occupancy]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TumorDescriptors:
        values = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        values["occupancy"] = tuple(float(v) for v in values["occupancy"])
        return cls(**values)


def occupancy_map(labels: np.ndarray, brain: np.ndarray, cells: tuple[int, int, int] = OCCUPANCY_CELLS) -> np.ndarray:
    """The share of tumor voxels (``labels`` > 0, an (X, Y, Z) array) in each cell of ``cells``
    laid over the bounding box of ``brain`` (same shape, > 0 inside); flattened, summing to 1,
    or zeros when there is no tumor inside the box."""
    if labels.shape != brain.shape or labels.ndim != 3:
        raise ValueError(f"label {labels.shape} and brain {brain.shape} must be the same 3D shape")
    inside = np.argwhere(brain > 0)
    if not len(inside):
        return np.zeros(int(np.prod(cells)))
    low, high = inside.min(0), inside.max(0) + 1
    tumor = np.argwhere(labels > 0)
    counts = np.zeros(cells)
    if len(tumor):
        relative = (tumor - low) / np.maximum(high - low, 1)
        cell = np.clip((relative * np.asarray(cells)).astype(int), 0, np.asarray(cells) - 1)
        np.add.at(counts, tuple(cell.T), 1.0)
    total = counts.sum()
    return (counts / total).ravel() if total else counts.ravel()


def describe(measured: Measurements, occupancy: np.ndarray) -> TumorDescriptors:
    """The descriptors of a label measured by :func:`lib.report.measure.measure` (with a brain)
    and its occupancy map (:func:`occupancy_map`)."""
    volumes = {k: round(float(v), 3) for k, v in measured.volumes_ml.items()}
    core = volumes["TC"]
    ncr = volumes["NCR"]
    return TumorDescriptors(
        volumes_ml=volumes,
        percent_of_brain={k: round(float(v), 3) for k, v in (measured.percent_of_brain or {}).items()},
        brain_ml=round(float(measured.brain_ml or 0.0), 1),
        enhancing_fraction=round(volumes["ET"] / core, 4) if core > 0 else 0.0,
        necrotic_fraction=round(ncr / core, 4) if core > 0 else 0.0,
        lesion_count=len(measured.lesions),
        measurable_lesions=sum(1 for lesion in measured.enhancing_lesions if lesion.measurable),
        hemisphere=measured.hemisphere,
        crosses_midline=measured.crosses_midline,
        occupancy=tuple(float(v) for v in occupancy),
    )


def tumor_vector(d: TumorDescriptors) -> np.ndarray:
    """A float32 vector of ``d`` whose Euclidean distances compare tumors (see :data:`WEIGHTS`)."""
    side = {"right": 1.0, "left": -1.0}.get(d.hemisphere or "", 0.0)
    parts = [
        WEIGHTS["occupancy"] * np.sqrt(np.asarray(d.occupancy, float)),
        WEIGHTS["volumes"] * np.log1p([d.volumes_ml.get(k, 0.0) for k in VECTOR_VOLUMES]) / VOLUME_LOG_SCALE,
        WEIGHTS["composition"] * np.array([d.enhancing_fraction, d.necrotic_fraction]),
        WEIGHTS["lesions"] * np.array([math.log1p(d.lesion_count) / math.log(5.0)]),
        WEIGHTS["laterality"] * np.array([side, 1.0 if d.crosses_midline else 0.0]),
    ]
    return np.concatenate(parts).astype(np.float32)


def volume_vector(d: TumorDescriptors) -> np.ndarray:
    """The whole-tumor volume alone: the benchmark's volume-only baseline ranking."""
    return np.array([math.log1p(d.volumes_ml.get("WT", 0.0))], np.float32)


def tumor_vector_length() -> int:
    return int(np.prod(OCCUPANCY_CELLS)) + len(VECTOR_VOLUMES) + 2 + 1 + 2


__all__ = ["OCCUPANCY_CELLS", "TumorDescriptors", "describe", "occupancy_map", "tumor_vector",
           "tumor_vector_length", "volume_vector"]
