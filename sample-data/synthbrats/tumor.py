"""Tumors: where they grow, their shape and compartments, and the mass effect they cause.

Three kinds, as seen in the clinic:

* ``glioblastoma``: a large, lobulated core with a necrotic centre and an enhancing
  rim of irregular thickness, surrounded by edema that spreads along white matter;
* ``low_grade``: a non-enhancing solid core (label 1 only, no ET) with little edema;
* ``metastasis``: one to four small enhancing lesions at the grey/white junction,
  with edema that is large relative to their size.

Compartments map to BraTS labels: necrosis and solid non-enhancing tumor -> 1 (NCR),
edema -> 2 (ED), enhancing tumor -> 3 (ET). Intensities need the finer split, so
painting returns a compartment map too (see ``COMPARTMENTS``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from lib.brats import ED, ET, NCR

from .grid import WorkingGrid, rotation_matrix, smooth_noise

#: Compartment codes of the compartment map (0 = healthy tissue).
NECROSIS, SOLID, EDEMA, ENHANCING = 1, 2, 3, 4
COMPARTMENTS = {NECROSIS: "necrosis", SOLID: "solid", EDEMA: "edema", ENHANCING: "enhancing"}
COMPARTMENT_LABEL = {NECROSIS: NCR, SOLID: NCR, EDEMA: ED, ENHANCING: ET}

KINDS = ("glioblastoma", "low_grade", "metastasis")
KIND_PROBABILITIES = (0.5, 0.2, 0.3)


@dataclass(frozen=True)
class TumorSpec:
    """One lesion. Distances in mm, ``centre`` in subject RAS mm."""

    kind: str
    centre: tuple[float, float, float]
    core_radius: float
    axes: tuple[float, float, float]         # relative semi-axes of the core ellipsoid
    angles_deg: tuple[float, float, float]   # orientation of the ellipsoid
    lobulation: float                        # amplitude of the radial irregularity
    necrosis: bool
    rim_mm: float                            # enhancing rim thickness, 0 = no enhancement
    edema_mm: float                          # how far edema reaches into white matter
    push: float                              # mass effect strength in [0, 1)

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def scaled(self, factor: float) -> TumorSpec:
        """The same lesion at another size (a follow-up scan): core, rim and edema reach
        times ``factor``, mass effect with the core."""
        return replace(self, core_radius=self.core_radius * factor, rim_mm=self.rim_mm * min(factor, 1.0),
                       edema_mm=self.edema_mm * factor, push=float(np.clip(self.push * factor, 0.0, 0.6)))


def draw_tumor_specs(rng: np.random.Generator, wm: np.ndarray, brain: np.ndarray, points: np.ndarray,
                     spacing_mm: float, kind: str | None = None) -> list[TumorSpec]:
    """Choose the kind, count, sizes and centres of a case's lesions.

    ``wm`` and ``brain`` are (coarse) WM and brain probability maps with their RAS
    coordinates ``points`` (3, ...) and voxel size ``spacing_mm``; centres are drawn
    where the lesion's core fits inside the brain.
    """
    kind = kind or str(rng.choice(KINDS, p=KIND_PROBABILITIES))
    count = int(rng.choice([1, 2, 3, 4], p=[0.4, 0.3, 0.2, 0.1])) if kind == "metastasis" else \
        (2 if kind == "glioblastoma" and rng.random() < 0.1 else 1)
    depth = ndimage.distance_transform_edt(brain > 0.5) * spacing_mm
    specs: list[TumorSpec] = []
    for _ in range(count):
        spec = _draw_one(rng, kind, count)
        if kind == "metastasis":
            candidates = (wm > 0.25) & (wm < 0.75)
        else:
            candidates = wm > 0.6
        candidates &= depth > spec.core_radius * 0.7 + 4.0
        for other in specs:
            dist = np.linalg.norm(points - np.asarray(other.centre)[:, None, None, None], axis=0)
            candidates &= dist > other.core_radius + spec.core_radius + 6.0
        idx = np.argwhere(candidates)
        if len(idx) == 0:
            continue
        pick = idx[rng.integers(len(idx))]
        centre = tuple(float(points[(slice(None), *pick)][i] + rng.uniform(-1, 1) * spacing_mm) for i in range(3))
        specs.append(TumorSpec(**{**asdict(spec), "centre": centre}))
    return specs


def _draw_one(rng: np.random.Generator, kind: str, count: int) -> TumorSpec:
    if kind == "glioblastoma":
        radius = rng.uniform(9, 30) / (1.3 if count > 1 else 1.0)
        necrosis = rng.random() < 0.85
        rim = rng.uniform(1.5, 6.0)
        edema = rng.uniform(5, 22)
        lobulation = rng.uniform(0.1, 0.3)
    elif kind == "low_grade":
        radius = rng.uniform(10, 28)
        necrosis = rng.random() < 0.15            # small cystic parts
        rim = 0.0
        edema = rng.uniform(0, 8)
        lobulation = rng.uniform(0.08, 0.25)
    else:
        radius = rng.uniform(3, 13)
        necrosis = radius > 7 and rng.random() < 0.6
        rim = rng.uniform(1.5, 3.5) if necrosis else radius + 1.0   # small ones enhance throughout
        edema = rng.uniform(1.0, 3.5) * radius + rng.uniform(3, 10)
        lobulation = rng.uniform(0.03, 0.15)
    axes = tuple(float(a) for a in rng.uniform(0.75, 1.25, 3))
    push = float(np.clip(0.1 + radius / 55 + edema / 150, 0.05, 0.6))
    return TumorSpec(kind, (0.0, 0.0, 0.0), float(radius), axes, tuple(float(a) for a in rng.uniform(0, 180, 3)),
                     float(lobulation), bool(necrosis), float(rim), float(edema), push)


def mass_effect(points: np.ndarray, specs: list[TumorSpec]) -> np.ndarray:
    """Subject RAS points (3, ...) -> the points the displaced tissue came from (3, ...).

    Each lesion pushes tissue radially away from its centre: the tissue now at
    distance ``r`` came from distance ``r * (1 - push * exp(-r^2 / 2 s^2))``, which is
    monotonic in ``r`` (no folding) and fades to no displacement far away.
    """
    src = points.astype(np.float32, copy=True)
    for spec in specs:
        c = np.asarray(spec.centre, np.float32).reshape(3, *([1] * (points.ndim - 1)))
        rel = src - c
        r2 = (rel ** 2).sum(0, keepdims=True)
        s = 1.2 * (spec.core_radius + 0.4 * spec.edema_mm)
        src = c + rel * (1.0 - spec.push * np.exp(-r2 / (2 * s * s)))
    return src


def paint_tumors(specs: list[TumorSpec], wm: np.ndarray, csf: np.ndarray, brain: np.ndarray,
                 grid: WorkingGrid, rng: np.random.Generator) -> np.ndarray:
    """Compartment map (X, Y, Z) uint8 of all lesions on the working grid (codes in ``COMPARTMENTS``).

    Each lesion is built in a box around it: an irregular ellipsoidal core; an
    enhancing shell of noisy thickness ``rim_mm`` inside the core surface, the rest
    necrotic (or solid); edema outside the core reaching ``edema_mm`` scaled by the
    local WM probability (so it spreads along white matter and spares cortex and
    CSF), always enveloping the core by at least 2 mm inside the brain.
    """
    comp = np.zeros(grid.shape, np.uint8)
    inv = np.linalg.inv(grid.affine)
    for spec in specs:
        reach = spec.core_radius * 1.4 * max(spec.axes) * (1 + spec.lobulation) + spec.edema_mm * 1.5 + 6
        centre_vox = inv[:3, :3] @ np.asarray(spec.centre) + inv[:3, 3]
        lo = np.maximum(np.floor(centre_vox - reach / grid.spacing).astype(int), 0)
        hi = np.minimum(np.ceil(centre_vox + reach / grid.spacing).astype(int) + 1, grid.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        box_shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
        axes = [np.arange(a, b) for a, b in zip(lo, hi, strict=True)]
        ijk = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
        rel = (ijk - centre_vox[:, None, None, None].astype(np.float32)) * grid.spacing
        rot = rotation_matrix(np.deg2rad(spec.angles_deg)).astype(np.float32)
        local = np.einsum("ij,jxyz->ixyz", rot.T, rel) / np.asarray(spec.axes, np.float32)[:, None, None, None]
        radius = np.sqrt((local ** 2).sum(0))
        lobes = smooth_noise(rng, box_shape, max(1.0, spec.core_radius / 2.5 / grid.spacing))
        core = (radius * (1 + spec.lobulation * lobes) < spec.core_radius) & (brain[box] > 0.5)
        if not core.any():
            continue
        inside = ndimage.distance_transform_edt(core) * grid.spacing
        outside = ndimage.distance_transform_edt(~core) * grid.spacing
        rim_noise = smooth_noise(rng, box_shape, max(1.0, 3.0 / grid.spacing))
        thickness = np.maximum(spec.rim_mm * np.clip(1 + 0.6 * rim_noise, 0.2, 2.0), grid.spacing)
        enhancing = core & (inside <= thickness) if spec.rim_mm > 0 \
            else np.zeros_like(core)
        interior = core & ~enhancing
        if spec.kind == "low_grade":
            cyst = interior & (inside > 0.55 * inside.max()) if spec.necrosis else np.zeros_like(core)
            lesion = np.where(cyst, NECROSIS, np.where(interior, SOLID, 0))
        else:
            lesion = np.where(interior, NECROSIS if spec.necrosis else SOLID, 0)
        lesion = np.where(enhancing, ENHANCING, lesion)
        spread = spec.edema_mm * (0.12 + np.clip(wm[box], 0, 1) ** 0.8) \
            * np.clip(1 + 0.45 * smooth_noise(rng, box_shape, max(1.0, 6.0 / grid.spacing)), 0.2, 2.0)
        edema = ~core & (brain[box] > 0.5) & (((outside < spread) & (csf[box] < 0.5)) | (outside <= 2.0))
        lesion = np.where(edema, EDEMA, lesion).astype(np.uint8)
        target = comp[box]
        # a lesion's core wins over a neighbour's edema; edema never overwrites a core
        write = (lesion > 0) & ((target == 0) | (target == EDEMA))
        target[write] = lesion[write]
    return comp


def compartments_to_labels(comp: np.ndarray) -> np.ndarray:
    """BraTS labels (uint8) from a compartment map."""
    lut = np.zeros(max(COMPARTMENTS) + 1, np.uint8)
    for code, label in COMPARTMENT_LABEL.items():
        lut[code] = label
    return lut[comp]

