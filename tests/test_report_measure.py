"""Report measurements on shapes whose answers are known: volumes, RANO diameters and measurability,
target lesions, hemisphere and midline, on isotropic, anisotropic and oblique grids."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from lib.brats import ED, ET, NCR
from lib.errors import InvalidLabelError
from lib.report.measure import measure
from lib.transforms import Grid, array_xyz, image_from_xyz

from _volumes import IDENTITY, rotation_matrix

#: An oblique axial acquisition: tilted 20 degrees about two axes.
OBLIQUE = rotation_matrix((20.0, 20.0, 0.0))
GRIDS = {
    "isotropic": ((1.0, 1.0, 1.0), np.eye(3)),
    "anisotropic": ((0.5, 0.8, 3.0), np.eye(3)),
    "oblique": ((0.7, 0.7, 1.5), OBLIQUE),
}
#: Where shapes are centred: off the voxel centres by a fraction of a voxel, as real lesions are.
CENTRE = np.array([12.0, -20.0, 35.0])


def grid_around(centre: np.ndarray, half_extent_mm: float, spacing, direction=IDENTITY) -> Grid:
    """A grid covering ``half_extent_mm`` around ``centre`` along each of its axes, its voxel
    centres 0.37 voxel off ``centre``."""
    spacing = np.asarray(spacing, float)
    direction = np.asarray(direction, float)
    size = 2 * np.ceil(half_extent_mm / spacing).astype(int) + 1
    origin = centre - direction @ (((size - 1) / 2 + 0.37) * spacing)
    return Grid(tuple(int(s) for s in size), tuple(spacing), tuple(origin), tuple(direction.ravel()))


def voxel_points(grid: Grid) -> np.ndarray:
    """(X, Y, Z, 3) LPS points (mm) of the voxel centres."""
    index = np.moveaxis(np.indices(grid.size), 0, -1).astype(float)
    return np.asarray(grid.origin) + (index * grid.spacing) @ np.asarray(grid.direction).reshape(3, 3).T


def ellipsoid(grid: Grid, centre, semi_axes_mm, axes=IDENTITY) -> np.ndarray:
    """Boolean (X, Y, Z): voxel centres inside the ellipsoid whose semi-axes lie along the columns
    of ``axes`` (LPS unit vectors)."""
    local = (voxel_points(grid) - np.asarray(centre)) @ np.asarray(axes)
    return ((local / np.asarray(semi_axes_mm)) ** 2).sum(-1) <= 1.0


def label_image(grid: Grid, *parts: tuple[np.ndarray, int]) -> sitk.Image:
    labels = np.zeros(grid.size, np.uint8)
    for mask, value in parts:
        labels[mask] = value
    return image_from_xyz(labels, grid)


def in_plane_rotation(degrees: float) -> np.ndarray:
    return rotation_matrix((0.0, 0.0, degrees))


SEMI_AXES = np.array([16.0, 9.0, 12.0])


@pytest.mark.parametrize("name", list(GRIDS))
def test_volumes_of_a_nested_ellipsoid_are_within_one_percent(name: str) -> None:
    spacing, direction = GRIDS[name]
    semi_axes = np.array([16.0, 12.0, 18.0])  # the necrosis spans 4 slices of 3 mm
    grid = grid_around(CENTRE, 21.0, spacing, direction)
    whole, core = ellipsoid(grid, CENTRE, semi_axes), ellipsoid(grid, CENTRE, semi_axes * 0.8)
    necrosis = ellipsoid(grid, CENTRE, semi_axes * 0.5)
    m = measure(label_image(grid, (whole, ED), (core, ET), (necrosis, NCR)))
    ml = 4 / 3 * math.pi * float(np.prod(semi_axes)) / 1000
    expected = {"WT": ml, "TC": ml * 0.8 ** 3, "NCR": ml * 0.5 ** 3, "ET": ml * (0.8 ** 3 - 0.5 ** 3),
                "ED": ml * (1 - 0.8 ** 3)}
    for region, volume in expected.items():
        assert m.volumes_ml[region] == pytest.approx(volume, rel=0.01), region
    assert len(m.lesions) == 1 and m.lesions[0].volume_ml == pytest.approx(expected["TC"], rel=0.01)
    assert np.allclose(m.lesions[0].centroid_lps_mm, CENTRE, atol=0.2)


@pytest.mark.parametrize(("name", "turn_deg"), [("isotropic", 0.0), ("anisotropic", 0.0), ("anisotropic", 30.0),
                                                ("oblique", 0.0), ("oblique", 55.0)])
def test_rano_diameters_of_an_ellipsoid_in_the_axial_plane(name: str, turn_deg: float) -> None:
    """Axes of 32 and 18 mm in the (possibly tilted, possibly turned) axial plane: both diameters
    within one in-plane voxel, the longest along the long axis, end points on the surface."""
    spacing, direction = GRIDS[name]
    grid = grid_around(CENTRE, 18.0, spacing, direction)
    axes = direction @ in_plane_rotation(turn_deg)
    m = measure(label_image(grid, (ellipsoid(grid, CENTRE, SEMI_AXES, axes), ET)))
    (lesion,) = m.enhancing_lesions
    bd = lesion.bidimensional
    voxel = max(spacing[:2])
    assert m.axial_axis == 2
    assert bd.longest.length_mm == pytest.approx(32.0, abs=voxel)
    assert bd.perpendicular.length_mm == pytest.approx(18.0, abs=voxel)
    assert bd.product_mm2 == pytest.approx(bd.longest.length_mm * bd.perpendicular.length_mm)
    longest = np.subtract(bd.longest.end_lps_mm, bd.longest.start_lps_mm)
    perpendicular = np.subtract(bd.perpendicular.end_lps_mm, bd.perpendicular.start_lps_mm)
    assert abs(longest @ perpendicular) < 1e-6 * np.linalg.norm(longest) * np.linalg.norm(perpendicular)
    assert math.degrees(math.acos(abs(longest @ axes[:, 0]) / np.linalg.norm(longest))) < 10.0
    for end in (bd.longest.start_lps_mm, bd.longest.end_lps_mm, bd.perpendicular.start_lps_mm,
                bd.perpendicular.end_lps_mm):  # on the surface, within a voxel
        local = (np.asarray(end) - CENTRE) @ axes
        assert abs(np.sqrt(((local / SEMI_AXES) ** 2).sum()) - 1.0) < voxel / 9.0, end
    middle = np.mean([bd.perpendicular.start_lps_mm, bd.perpendicular.end_lps_mm], 0)
    assert abs((middle - CENTRE) @ axes[:, 0]) < 4.0  # the widest chord crosses the long axis near its middle


@pytest.mark.parametrize("radius_mm", [5.0, 7.07, 12.3])  # 7.07: lattice points on the diagonals
def test_a_digitised_disc_measures_twice_its_radius_within_one_pixel(radius_mm: float) -> None:
    spacing = (0.7, 0.7, 2.0)
    direction = rotation_matrix((0.0, 0.0, 25.0))
    grid = grid_around(CENTRE, radius_mm + 2, spacing, direction)
    disc = ellipsoid(grid, CENTRE, (radius_mm, radius_mm, 1e3), direction)
    disc[:, :, 2:] = False  # a flat cylinder: the same disc on two slices
    m = measure(label_image(grid, (disc, ET)))
    bd = m.enhancing_lesions[0].bidimensional
    assert bd.longest.length_mm == pytest.approx(2 * radius_mm, abs=0.7)
    assert bd.perpendicular.length_mm == pytest.approx(2 * radius_mm, abs=0.7)


def test_a_single_voxel_and_a_line_of_voxels_are_measured() -> None:
    """Fewer than 4 pixels, and collinear pixels (no convex hull): one pixel across, the line's length."""
    grid = Grid((20, 20, 5), (0.5, 0.8, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    labels = np.zeros(grid.size, np.uint8)
    labels[2, 2, 2] = ET
    labels[5:17, 10, 1:3] = ET  # 12 voxels of 0.5 mm along x, on 2 slices
    m = measure(image_from_xyz(labels, grid), min_lesion_ml=0.0)
    line, dot = m.enhancing_lesions
    assert line.bidimensional.longest.length_mm == pytest.approx(6.0)
    assert line.bidimensional.perpendicular.length_mm == pytest.approx(0.8)
    assert dot.bidimensional.product_mm2 == pytest.approx(0.5 * 0.8)
    assert not line.measurable and not dot.measurable
    specks = measure(image_from_xyz(labels, grid))  # by default, under 0.1 mL is no lesion ...
    assert specks.enhancing_lesions == () and not array_xyz(specks.enhancing_lesion_map).any()
    assert specks.volumes_ml["ET"] == pytest.approx(m.volumes_ml["ET"]) and m.volumes_ml["ET"] > 0  # ... still ET


def test_measurability_needs_10_mm_in_both_diameters() -> None:
    grid = grid_around(CENTRE, 20.0, (0.5, 0.5, 1.0))
    small = ellipsoid(grid, CENTRE - [10, 0, 0], (4.5, 4.5, 4.5))  # 9 mm
    large = ellipsoid(grid, CENTRE + [8, 0, 0], (6.0, 6.0, 6.0))  # 12 mm
    m = measure(label_image(grid, (small, ET), (large, ET)))
    by_size = sorted(m.enhancing_lesions, key=lambda lesion: lesion.volume_ml)
    assert [lesion.measurable for lesion in by_size] == [False, True]
    assert "need both >= 10 mm" in by_size[0].not_measurable_because
    assert [t.id for t in m.targets] == [by_size[1].id]


def test_a_lesion_on_one_axial_slice_is_not_measurable() -> None:
    grid = grid_around(CENTRE, 15.0, (1.0, 1.0, 3.0))
    disc = ellipsoid(grid, CENTRE, (12.0, 12.0, 100.0))
    disc[:, :, np.arange(grid.size[2]) != grid.size[2] // 2] = False
    m = measure(label_image(grid, (disc, ET)))
    (lesion,) = m.enhancing_lesions
    assert lesion.bidimensional.longest.length_mm > 20 and lesion.n_axial_slices == 1
    assert not lesion.measurable and "1 axial slice" in lesion.not_measurable_because
    assert m.targets == () and m.spd_mm2 == 0.0


def test_thick_slices_need_diameters_of_twice_the_slice_thickness() -> None:
    """RANO: with slices thicker than 5 mm a measurable lesion is at least 2 x the slice thickness.
    A lesion of 11 x 11 mm seen on several slices: measurable on 5 mm slices, not on 6 mm ones."""
    results = {}
    for thickness in (5.0, 6.0):
        grid = grid_around(CENTRE, 16.0, (0.5, 0.5, thickness))
        m = measure(label_image(grid, (ellipsoid(grid, CENTRE, (5.5, 5.5, 14.0)), ET)))
        (lesion,) = m.enhancing_lesions
        assert lesion.n_axial_slices >= 2 and 10.5 < lesion.bidimensional.perpendicular.length_mm < 12.0
        results[thickness] = (m.min_diameter_mm, lesion.measurable)
    assert results == {5.0: (10.0, True), 6.0: (12.0, False)}


def test_targets_are_the_three_largest_products() -> None:
    grid = grid_around(CENTRE, 40.0, (1.0, 1.0, 2.0))
    offsets = {7.0: (-25, -25, 0), 9.0: (25, -25, 0), 8.0: (-25, 25, 0), 6.5: (25, 25, 0)}
    parts = [(ellipsoid(grid, CENTRE + np.array(at), (r, r, 8.0)), ET) for r, at in offsets.items()]
    m = measure(label_image(grid, *parts))
    assert len(m.enhancing_lesions) == 4 and all(lesion.measurable for lesion in m.enhancing_lesions)
    products = sorted((lesion.bidimensional.product_mm2 for lesion in m.enhancing_lesions), reverse=True)
    assert [t.bidimensional.product_mm2 for t in m.targets] == products[:3]
    assert m.spd_mm2 == pytest.approx(sum(products[:3]))
    smallest = min(m.enhancing_lesions, key=lambda lesion: lesion.bidimensional.product_mm2)
    assert np.allclose(smallest.centroid_lps_mm, CENTRE + [25, 25, 0], atol=0.5)  # r = 6.5 mm


BRAIN_CENTRE = np.array([4.0, -10.0, 20.0])  # the midline is at x = 4 mm


@pytest.mark.parametrize(("tumor_x", "hemisphere", "crosses"), [
    (30.0, "left", False),  # LPS: +x is the patient's left
    (-30.0, "right", False),
    (14.0, "left", False),  # touches the midline, not 5 mm beyond it
    (5.0, "left", True),  # 1 mL of core more than 5 mm into the right hemisphere
])
def test_hemisphere_and_midline_crossing(tumor_x: float, hemisphere: str, crosses: bool) -> None:
    grid = grid_around(BRAIN_CENTRE, 70.0, (2.0, 2.0, 2.0))
    brain = ellipsoid(grid, BRAIN_CENTRE, (65.0, 55.0, 45.0))
    tumor_centre = BRAIN_CENTRE + [tumor_x, 0.0, 0.0]
    label = label_image(grid, (ellipsoid(grid, tumor_centre, (20.0, 20.0, 20.0)), ED),
                        (ellipsoid(grid, tumor_centre, (15.0, 15.0, 15.0)), ET))
    m = measure(label, image_from_xyz(brain.astype(np.uint8), grid))
    assert m.midline_x_mm == pytest.approx(BRAIN_CENTRE[0], abs=0.1)
    assert (m.hemisphere, m.crosses_midline) == (hemisphere, crosses)
    assert m.brain_ml == pytest.approx(4 / 3 * math.pi * 65 * 55 * 45 / 1000, rel=0.01)
    assert m.percent_of_brain["WT"] == pytest.approx(100 * m.volumes_ml["WT"] / m.brain_ml)
    without = measure(label)
    assert (without.hemisphere, without.crosses_midline, without.brain_ml, without.percent_of_brain) == \
        (None, None, None, None)


def test_to_dict_is_json() -> None:
    grid = grid_around(CENTRE, 12.0, (1.0, 1.0, 1.0))
    m = measure(label_image(grid, (ellipsoid(grid, CENTRE, (8.0, 6.0, 6.0)), ET)), min_lesion_ml=0.1)
    d = json.loads(json.dumps(m.to_dict()))
    assert d["targets"] == [1] and d["enhancing_lesions"][0]["bidimensional"]["slice_index"] >= 0


def test_label_values_outside_0_to_3_are_refused() -> None:
    grid = grid_around(CENTRE, 3.0, (1.0, 1.0, 1.0))
    with pytest.raises(InvalidLabelError):
        measure(label_image(grid, (ellipsoid(grid, CENTRE, (2.0, 2.0, 2.0)), 4)))
