"""Measurements of one segmentation for a clinical report (RANO 2.0).

Input: a BraTS label (0 background, 1 NCR, 2 ED, 3 ET) as a SimpleITK image on its own grid, any
spacing and any direction matrix (anisotropic and oblique grids are measured in physical space).
Lengths are in mm, areas in mm², volumes in mL; points are SimpleITK physical points: LPS world,
mm (+x towards the patient's left, +y posterior, +z superior). Index triples are (x, y, z), the
SimpleITK index order; arrays are indexed [x, y, z] (:func:`lib.transforms.array_xyz`).

What is measured (:func:`measure`):

* volumes of NCR, ED, ET, TC (1+3) and WT (1+2+3), and their share of the brain;
* lesions: connected components (26-neighbourhood) of the tumor core;
* enhancing lesions: connected components of ET, each with its RANO bidimensional measurement on
  the acquired axial slices (:func:`bidimensional`) and its measurability; the target lesions and
  their sum of products of diameters (SPD);
* the hemisphere of the tumor and whether its core crosses the midline (with a brain mask only).

The lobe is not reported: it would need registration to an anatomical atlas, which is not
available offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from lib.brats import ET, REGIONS
from lib.errors import InputError, InvalidGeometryError, InvalidLabelError
from lib.postprocessing.regions import label_volumes_ml
from lib.transforms import Grid, array_xyz, image_from_xyz

#: Row of an ITK direction matrix holding the components along the world's (LPS) x axis,
#: right -> left, and along its z axis, inferior -> superior.
LPS_LEFT_ROW, LPS_SUPERIOR_ROW = 0, 2

#: RANO measurability: both diameters at least this long...
MIN_DIAMETER_MM = 10.0
#: ... or twice the slice thickness when slices are thicker than this ...
THICK_SLICE_MM = 5.0
#: ... and the lesion seen on at least this many axial slices.
MIN_AXIAL_SLICES = 2
#: RANO 2.0: at most this many target lesions make the SPD.
MAX_TARGETS = 3

#: The tumor core crosses the midline when at least ``MIDLINE_CROSSING_ML`` of it lies more than
#: ``MIDLINE_MARGIN_MM`` beyond the midline, on the side opposite to most of the whole tumor.
MIDLINE_MARGIN_MM = 5.0
MIDLINE_CROSSING_ML = 0.5

#: 26-neighbourhood of a voxel.
CONNECTIVITY_26 = np.ones((3, 3, 3), bool)

Point = tuple[float, float, float]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Diameter:
    """A measured diameter: its length (mm) and its two end points (LPS, mm), ready to draw."""

    length_mm: float
    start_lps_mm: Point
    end_lps_mm: Point

    def to_dict(self) -> dict[str, Any]:
        return {"length_mm": round(self.length_mm, 2), "start_lps_mm": _rounded(self.start_lps_mm),
                "end_lps_mm": _rounded(self.end_lps_mm)}


@dataclass(frozen=True)
class Bidimensional:
    """RANO bidimensional measurement of a lesion: on axial slice ``slice_index`` (index along the
    grid's axial axis), the longest diameter, the longest diameter perpendicular to it, and the
    product of their lengths (mm²)."""

    slice_index: int
    longest: Diameter
    perpendicular: Diameter
    product_mm2: float

    def to_dict(self) -> dict[str, Any]:
        return {"slice_index": self.slice_index, "longest": self.longest.to_dict(),
                "perpendicular": self.perpendicular.to_dict(), "product_mm2": round(self.product_mm2, 1)}


@dataclass(frozen=True)
class Lesion:
    """A connected component of the tumor core. ``box_start_index`` / ``box_size_voxels``: its
    bounding box on the grid (x, y, z); ``extent_mm``: the box's size along each grid axis, edge
    to edge (voxels x spacing)."""

    id: int
    volume_ml: float
    centroid_lps_mm: Point
    box_start_index: tuple[int, int, int]
    box_size_voxels: tuple[int, int, int]
    extent_mm: Point

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "volume_ml": round(self.volume_ml, 3), "centroid_lps_mm": _rounded(self.centroid_lps_mm),
                "box_start_index": list(self.box_start_index), "box_size_voxels": list(self.box_size_voxels),
                "extent_mm": _rounded(self.extent_mm)}


@dataclass(frozen=True)
class EnhancingLesion:
    """A connected component of the enhancing tumor with its RANO measurement. ``id`` is its value
    in :attr:`Measurements.enhancing_lesion_map`; ``n_axial_slices``: how many axial slices it is
    seen on; ``not_measurable_because``: why it is not measurable (None when it is)."""

    id: int
    volume_ml: float
    centroid_lps_mm: Point
    n_axial_slices: int
    bidimensional: Bidimensional
    measurable: bool
    not_measurable_because: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "volume_ml": round(self.volume_ml, 3), "centroid_lps_mm": _rounded(self.centroid_lps_mm),
                "n_axial_slices": self.n_axial_slices, "bidimensional": self.bidimensional.to_dict(),
                "measurable": self.measurable, "not_measurable_because": self.not_measurable_because}


@dataclass(frozen=True)
class Measurements:
    """Everything :func:`measure` finds in one label.

    * ``grid``: the label's grid; ``axial_axis``: the grid axis (0, 1, 2) the axial slices are
      perpendicular to; ``slice_thickness_mm``: the spacing along it; ``min_diameter_mm``: the
      RANO minimum diameter on this grid (:func:`min_diameter_mm`).
    * ``volumes_ml``: NCR, ED, ET, TC, WT; ``brain_ml`` and ``percent_of_brain`` (same keys):
      None without a brain.
    * ``lesions``: tumor-core components; ``enhancing_lesions``: ET components, numbered by
      decreasing volume; ``targets``: the target lesions (:func:`select_targets`); ``spd_mm2``:
      the sum of their products, 0 when none is measurable.
    * ``midline_x_mm``, ``hemisphere`` ("left" / "right", the patient's), ``crosses_midline``:
      None without a brain (see :func:`laterality`); ``hemisphere`` is also None without tumor.
    * ``enhancing_lesion_map``: UInt16 image on ``grid``, voxel value = enhancing lesion id (0
      elsewhere); what lesion matching across time works on. Not part of :meth:`to_dict`.
    """

    grid: Grid
    axial_axis: int
    slice_thickness_mm: float
    min_diameter_mm: float
    volumes_ml: dict[str, float]
    brain_ml: float | None
    percent_of_brain: dict[str, float] | None
    lesions: tuple[Lesion, ...]
    enhancing_lesions: tuple[EnhancingLesion, ...]
    targets: tuple[EnhancingLesion, ...]
    spd_mm2: float
    midline_x_mm: float | None
    hemisphere: str | None
    crosses_midline: bool | None
    enhancing_lesion_map: sitk.Image = field(repr=False, compare=False)

    def enhancing_lesion(self, lesion_id: int) -> EnhancingLesion:
        """The enhancing lesion of id ``lesion_id`` (ids run 1..n)."""
        return self.enhancing_lesions[lesion_id - 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; target lesions are given by id."""
        return {
            "grid": self.grid.to_dict(), "axial_axis": self.axial_axis,
            "slice_thickness_mm": self.slice_thickness_mm, "min_diameter_mm": self.min_diameter_mm,
            "volumes_ml": dict(self.volumes_ml), "brain_ml": None if self.brain_ml is None else round(self.brain_ml, 3),
            "percent_of_brain": None if self.percent_of_brain is None
            else {k: round(v, 3) for k, v in self.percent_of_brain.items()},
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "enhancing_lesions": [lesion.to_dict() for lesion in self.enhancing_lesions],
            "targets": [lesion.id for lesion in self.targets], "spd_mm2": round(self.spd_mm2, 1),
            "midline_x_mm": None if self.midline_x_mm is None else round(self.midline_x_mm, 2),
            "hemisphere": self.hemisphere, "crosses_midline": self.crosses_midline,
        }


def _rounded(point: Point, ndigits: int = 2) -> list[float]:
    return [round(float(v), ndigits) for v in point]


# --------------------------------------------------------------------------- axial slices
@dataclass(frozen=True, eq=False)
class AxialFrame:
    """The acquired axial slices of a grid, and physical coordinates on them.

    ``axial_axis`` is the grid axis (0, 1, 2) whose direction is closest to the patient's
    superior-inferior axis (largest |z| component of its direction cosine); the slices are
    perpendicular to it, so an oblique axial acquisition is measured on its own tilted slices.
    ``in_plane_axes`` are the two other grid axes. In-plane positions are 2D coordinates (mm) in
    ``basis`` (3x2, orthonormal, LPS) of the slice plane: the centre of the pixel of in-plane index
    (i, j) is at ``pixel_steps_mm @ (i, j)``, whose columns (2x2) are the pixel's edge vectors.
    ``index_to_lps`` (3x3) = direction @ diag(spacing) maps index offsets to physical offsets.
    """

    axial_axis: int
    in_plane_axes: tuple[int, int]
    basis: np.ndarray
    pixel_steps_mm: np.ndarray
    index_to_lps: np.ndarray
    origin_lps_mm: np.ndarray
    slice_thickness_mm: float

    @classmethod
    def of(cls, grid: Grid) -> AxialFrame:
        direction = np.asarray(grid.direction, float).reshape(3, 3)
        axial = int(np.argmax(np.abs(direction[LPS_SUPERIOR_ROW])))
        a, b = (axis for axis in range(3) if axis != axial)
        index_to_lps = direction @ np.diag(grid.spacing)
        basis, steps = np.linalg.qr(index_to_lps[:, [a, b]])  # in-plane steps = basis @ steps
        return cls(axial, (a, b), basis, steps, index_to_lps, np.asarray(grid.origin, float),
                   float(grid.spacing[axial]))

    def in_plane_mm(self, ij: np.ndarray) -> np.ndarray:
        """(N, 2) in-plane indices (along ``in_plane_axes``) -> (N, 2) in-plane coordinates (mm)."""
        return np.asarray(ij, float) @ self.pixel_steps_mm.T

    def to_lps(self, slice_index: int, uv_mm: np.ndarray) -> np.ndarray:
        """(N, 2) in-plane coordinates (mm) on axial slice ``slice_index`` -> (N, 3) LPS points (mm)."""
        return (self.origin_lps_mm + self.index_to_lps[:, self.axial_axis] * slice_index
                + np.asarray(uv_mm, float) @ self.basis.T)

    def index_to_point(self, index: np.ndarray) -> np.ndarray:
        """(..., 3) continuous indices (x, y, z) -> (..., 3) LPS points (mm)."""
        return self.origin_lps_mm + np.asarray(index, float) @ self.index_to_lps.T


def min_diameter_mm(slice_thickness_mm: float) -> float:
    """RANO's minimum diameter of a measurable lesion: 10 mm, or twice the slice thickness when
    slices are thicker than 5 mm. The slice spacing stands for the thickness (an image does not
    carry the thickness tag)."""
    if slice_thickness_mm > THICK_SLICE_MM:
        return max(MIN_DIAMETER_MM, 2.0 * slice_thickness_mm)
    return MIN_DIAMETER_MM


def _pixel_extent_mm(pixel_steps_mm: np.ndarray, direction: np.ndarray) -> float:
    """Extent (mm) along the unit in-plane ``direction`` of one pixel taken as the rhombus through
    the midpoints of its four edges (edge vectors: the columns of ``pixel_steps_mm``):
    max(|direction . edge0|, |direction . edge1|). The pixel spacing along a grid axis, 0.71 of it
    along a diagonal of a square pixel."""
    return float(np.abs(direction @ pixel_steps_mm).max())


def _farthest_pair(points: np.ndarray) -> tuple[int, int]:
    """Indices of the two farthest (N, 2) points: among the convex hull's vertices, or among all
    points when there are fewer than 4 or they are collinear. (i, i) for a single point."""
    candidates = np.arange(len(points))
    if len(points) >= 4:
        try:
            candidates = ConvexHull(points).vertices
        except QhullError:  # collinear pixels: brute force over all of them
            pass
    c = points[candidates]
    d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    return int(candidates[i]), int(candidates[j])


def _widest_chord(t: np.ndarray, s: np.ndarray, band_mm: float) -> tuple[float, float, float]:
    """Over all lines of constant ``t`` that cross pixels (a line at t0 crosses the pixels whose
    centre has |t - t0| < band_mm / 2), the one whose crossed pixels have the widest spread of
    ``s``. Returns (s_min, s_max, t of the line). Each maximal set of crossed pixels is a window
    [t_i, t_i + band_mm) of the centres sorted by t: one window per pixel, all reduced at once."""
    order = np.argsort(t, kind="stable")
    t, s = t[order], s[order]
    starts = np.arange(len(t))
    stops = np.searchsorted(t, t + band_mm * (1.0 - 1e-6), side="left")  # > starts since band_mm > 0
    bounds = np.stack([starts, stops], 1).ravel()
    padded = np.append(s, 0.0)  # so that a stop equal to len(s) is a valid reduceat index
    s_max = np.maximum.reduceat(padded, bounds)[::2]
    s_min = np.minimum.reduceat(padded, bounds)[::2]
    best = int(np.argmax(s_max - s_min))
    t_line = (t[starts[best]] + t[stops[best] - 1]) / 2.0
    return float(s_min[best]), float(s_max[best]), float(t_line)


@dataclass(frozen=True, eq=False)
class _SliceDiameters:
    """Both diameters on one slice, end points as (2, 2) in-plane coordinates (mm)."""

    longest_mm: float
    longest_uv: np.ndarray
    perpendicular_mm: float
    perpendicular_uv: np.ndarray

    @property
    def product_mm2(self) -> float:
        return self.longest_mm * self.perpendicular_mm


def _slice_diameters(uv: np.ndarray, pixel_steps_mm: np.ndarray) -> _SliceDiameters:
    """Longest and perpendicular diameters of the pixels whose centres are ``uv`` (N, 2), edge to
    edge (see :func:`bidimensional`); ``pixel_steps_mm``: the pixel's edge vectors (columns)."""
    i, j = _farthest_pair(uv)
    span = uv[j] - uv[i]
    centre_distance = float(np.hypot(*span))
    n = span / centre_distance if centre_distance > 0 else pixel_steps_mm[:, 0] / np.linalg.norm(pixel_steps_mm[:, 0])
    m = np.array([-n[1], n[0]])
    width_n, width_m = _pixel_extent_mm(pixel_steps_mm, n), _pixel_extent_mm(pixel_steps_mm, m)
    longest_uv = np.stack([uv[i] - n * width_n / 2, uv[j] + n * width_n / 2])
    s_min, s_max, t_line = _widest_chord(uv @ n, uv @ m, width_n)
    perpendicular_uv = np.stack([t_line * n + (s_min - width_m / 2) * m, t_line * n + (s_max + width_m / 2) * m])
    return _SliceDiameters(centre_distance + width_n, longest_uv, s_max - s_min + width_m, perpendicular_uv)


def bidimensional(voxels: np.ndarray, frame: AxialFrame) -> Bidimensional:
    """RANO bidimensional measurement of one lesion given as (N, 3) voxel indices (x, y, z).

    Edge to edge: on each axial slice the lesion's outline is taken through the midpoints of its
    boundary pixel edges, halfway between a pixel in and a pixel out, as a 50 % iso-contour runs.
    So each pixel stands for the rhombus through its four edge midpoints (physical, with the
    in-plane spacings and direction), whose extent along a unit direction n is
    w(n) = max(|n . e0|, |n . e1|) for the pixel edge vectors e0, e1:

    * longest diameter: through the two farthest pixel centres (found on their convex hull),
      lengthened by w(n) along its direction n, half at each end;
    * perpendicular diameter: chords parallel to the perpendicular direction m, one per line that
      crosses pixel rhombi (a line at offset t0 along n crosses the pixels whose centre has
      |t - t0| < w(n) / 2); a chord runs from the lowest to the highest centre along m of the
      pixels it crosses, lengthened by w(m). The longest chord wins.

    On digitised discs of radius R (3 to 30 pixels; square, 0.4 x 1 and rotated pixels) both
    diameters come out within one pixel (the larger in-plane spacing) of 2R: the longest -0.1 to
    +1.0 pixel off (picking the farthest pair favours pixels at the rim), the perpendicular -0.9
    to +1.0 pixel (mean about 0.1). The slice
    with the largest product (then the longer longest diameter) is kept; ``slice_index`` is its
    index along the axial axis. End points are LPS (mm) on that slice's plane.
    """
    voxels = np.asarray(voxels)
    slice_indices = voxels[:, frame.axial_axis]
    in_plane = voxels[:, list(frame.in_plane_axes)]
    best: tuple[int, _SliceDiameters] | None = None
    for k in np.unique(slice_indices):
        d = _slice_diameters(frame.in_plane_mm(in_plane[slice_indices == k]), frame.pixel_steps_mm)
        if best is None or (d.product_mm2, d.longest_mm) > (best[1].product_mm2, best[1].longest_mm):
            best = (int(k), d)
    assert best is not None, "a lesion has at least one voxel"
    k, d = best
    longest, perpendicular = frame.to_lps(k, d.longest_uv), frame.to_lps(k, d.perpendicular_uv)
    return Bidimensional(
        k,
        Diameter(d.longest_mm, _point(longest[0]), _point(longest[1])),
        Diameter(d.perpendicular_mm, _point(perpendicular[0]), _point(perpendicular[1])),
        d.product_mm2,
    )


def _point(p: np.ndarray) -> Point:
    return float(p[0]), float(p[1]), float(p[2])


def not_measurable_because(measurement: Bidimensional, n_axial_slices: int, min_diameter: float) -> str | None:
    """Why a lesion is not measurable by RANO (both diameters >= ``min_diameter`` mm, seen on
    >= 2 axial slices), or None when it is."""
    problems = []
    short = min(measurement.longest.length_mm, measurement.perpendicular.length_mm)
    if short < min_diameter - 1e-6:
        problems.append(f"diameters {measurement.longest.length_mm:.1f} x {measurement.perpendicular.length_mm:.1f} mm,"
                        f" need both >= {min_diameter:g} mm")
    if n_axial_slices < MIN_AXIAL_SLICES:
        problems.append(f"seen on {n_axial_slices} axial slice, need >= {MIN_AXIAL_SLICES}")
    return "; ".join(problems) or None


def select_targets(lesions: tuple[EnhancingLesion, ...], max_targets: int = MAX_TARGETS) -> tuple[EnhancingLesion, ...]:
    """The target lesions: the measurable ones with the largest products, at most ``max_targets``.
    They are chosen on each scan (RANO follows the targets chosen at baseline; pair lesions across
    time with :func:`lib.report.response.match_lesions` for that)."""
    measurable = sorted((lesion for lesion in lesions if lesion.measurable),
                        key=lambda lesion: (-lesion.bidimensional.product_mm2, lesion.id))
    return tuple(measurable[:max_targets])


# --------------------------------------------------------------------------- components
def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of a boolean (X, Y, Z) mask, numbered 1..n by decreasing voxel
    count (ties: in the order scipy's labelling meets them). Returns (int32 ids, n)."""
    raw, n = ndimage.label(mask, structure=CONNECTIVITY_26)
    if n == 0:
        return raw.astype(np.int32), 0
    sizes = np.bincount(raw.ravel())[1:]
    relabel = np.zeros(n + 1, np.int32)
    relabel[np.argsort(-sizes, kind="stable") + 1] = np.arange(1, n + 1, dtype=np.int32)
    return relabel[raw], int(n)


def component_voxels(ids: np.ndarray, n: int) -> list[np.ndarray]:
    """(N_k, 3) voxel indices (x, y, z) of each component 1..n of an id array."""
    out = []
    for k, box in enumerate(ndimage.find_objects(ids, n), 1):
        out.append(np.argwhere(ids[box] == k) + np.array([sl.start for sl in box]))
    return out


def _core_lesion(lesion_id: int, voxels: np.ndarray, frame: AxialFrame, grid: Grid, voxel_ml: float) -> Lesion:
    start = voxels.min(0)
    size = voxels.max(0) - start + 1
    return Lesion(lesion_id, len(voxels) * voxel_ml, _point(frame.index_to_point(voxels.mean(0))),
                  (int(start[0]), int(start[1]), int(start[2])), (int(size[0]), int(size[1]), int(size[2])),
                  _point(size * np.asarray(grid.spacing)))


def _enhancing_lesion(lesion_id: int, voxels: np.ndarray, frame: AxialFrame, voxel_ml: float) -> EnhancingLesion:
    measurement = bidimensional(voxels, frame)
    n_slices = len(np.unique(voxels[:, frame.axial_axis]))
    why = not_measurable_because(measurement, n_slices, min_diameter_mm(frame.slice_thickness_mm))
    return EnhancingLesion(lesion_id, len(voxels) * voxel_ml, _point(frame.index_to_point(voxels.mean(0))),
                           n_slices, measurement, why is None, why)


# --------------------------------------------------------------------------- laterality
def laterality(labels: np.ndarray, brain: np.ndarray, frame: AxialFrame,
               voxel_ml: float) -> tuple[float, str | None, bool]:
    """(midline x in mm, hemisphere, crosses midline) of a label array (X, Y, Z) given a brain mask.

    The midline is the sagittal plane through the brain mask's centre of mass, perpendicular to the
    scanner's left-right axis (LPS x = constant): for a head tilted or turned in the scanner it is
    only approximate. ``hemisphere`` is the side holding most of the whole tumor (patient's left =
    +x in LPS), None without tumor; the tumor core crosses the midline when at least 0.5 mL of it
    lies more than 5 mm beyond the midline on the other side.
    """
    midline_x = float(frame.index_to_point(np.asarray(ndimage.center_of_mass(brain)))[LPS_LEFT_ROW])
    x_to_lps = frame.index_to_lps[LPS_LEFT_ROW]

    def x_mm(mask: np.ndarray) -> np.ndarray:
        return frame.origin_lps_mm[LPS_LEFT_ROW] + np.argwhere(mask) @ x_to_lps

    whole = x_mm(labels > 0)
    if whole.size == 0:
        return midline_x, None, False
    left = int((whole > midline_x).sum()) >= int((whole < midline_x).sum())
    towards_tumor = 1.0 if left else -1.0
    core = x_mm(np.isin(labels, REGIONS["TC"]))
    across_ml = float(((core - midline_x) * towards_tumor < -MIDLINE_MARGIN_MM).sum()) * voxel_ml
    return midline_x, "left" if left else "right", across_ml >= MIDLINE_CROSSING_ML


# --------------------------------------------------------------------------- measure
def _label_array(label: sitk.Image) -> np.ndarray:
    if label.GetDimension() != 3:
        raise InvalidGeometryError(f"expected a 3D label, got {label.GetDimension()}D")
    labels = array_xyz(label)
    if not np.isin(labels, (0, 1, 2, 3)).all():
        raise InvalidLabelError(f"label values must be 0-3, found {sorted(np.unique(labels).tolist())[:10]}")
    return labels.astype(np.uint8)


def _brain_array(brain: sitk.Image, grid: Grid) -> np.ndarray:
    if not Grid.of(brain).matches(grid):
        raise InvalidGeometryError("the brain image lies on another grid than the label")
    mask = array_xyz(brain) > 0
    if not mask.any():
        raise InputError("the brain image has no voxel > 0")
    return mask


def measure(label: sitk.Image, brain: sitk.Image | None = None, *, min_lesion_ml: float = 0.1) -> Measurements:
    """Measure a BraTS label (values 0-3) on its own grid.

    ``brain``: an image on the same grid whose voxels > 0 are the brain: a brain mask, or the
    skull-stripped reference image itself (e.g. the BraTS t1c). Without it, ``brain_ml``,
    ``percent_of_brain``, the midline and the hemisphere are None. ``min_lesion_ml``: smaller
    tumor-core and enhancing components are not lesions (not listed, not in the lesion map, not
    "new" at follow-up: specks of a few voxels are noise, not disease); they still count in the
    volumes. Volumes: voxel count x product of the
    spacings / 1000. See :func:`bidimensional` for the diameters and :func:`laterality` for the
    midline. Raises :class:`InvalidLabelError` for values outside 0-3, :class:`InvalidGeometryError`
    for a non-3D label or a brain on another grid.
    """
    labels = _label_array(label)
    grid = Grid.of(label)
    frame = AxialFrame.of(grid)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    volumes = label_volumes_ml(labels, grid.spacing)

    core_ids, n_core = label_components(np.isin(labels, REGIONS["TC"]))
    lesions = tuple(lesion for lesion in (_core_lesion(k, v, frame, grid, voxel_ml)
                                          for k, v in enumerate(component_voxels(core_ids, n_core), 1))
                    if lesion.volume_ml >= min_lesion_ml)
    et_ids, n_et = label_components(labels == ET)
    n_et = int(np.sum(np.bincount(et_ids.ravel(), minlength=n_et + 1)[1:] * voxel_ml >= min_lesion_ml))
    et_ids[et_ids > n_et] = 0  # ids run by decreasing size: the specks are the last ones
    enhancing = tuple(_enhancing_lesion(k, v, frame, voxel_ml) for k, v in enumerate(component_voxels(et_ids, n_et), 1))
    targets = select_targets(enhancing)

    brain_ml: float | None = None
    percent: dict[str, float] | None = None
    midline_x: float | None = None
    hemisphere: str | None = None
    crosses: bool | None = None
    if brain is not None:
        brain_mask = _brain_array(brain, grid)
        brain_ml = float(brain_mask.sum()) * voxel_ml
        percent = {name: 100.0 * v / brain_ml for name, v in volumes.items()}
        midline_x, hemisphere, crosses = laterality(labels, brain_mask, frame, voxel_ml)

    return Measurements(
        grid=grid, axial_axis=frame.axial_axis, slice_thickness_mm=frame.slice_thickness_mm,
        min_diameter_mm=min_diameter_mm(frame.slice_thickness_mm), volumes_ml=volumes, brain_ml=brain_ml,
        percent_of_brain=percent, lesions=lesions, enhancing_lesions=enhancing, targets=targets,
        spd_mm2=float(sum(t.bidimensional.product_mm2 for t in targets)), midline_x_mm=midline_x,
        hemisphere=hemisphere, crosses_midline=crosses,
        enhancing_lesion_map=image_from_xyz(et_ids.astype(np.uint16), grid),
    )
