"""RANO 2.0 response on constructed prior/current pairs, lesion matching across time, and the prior
label brought onto the current grid by rigid registration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from lib.brats import ED, ET, NCR
from lib.report.measure import Bidimensional, Diameter, EnhancingLesion, Measurements, measure, select_targets
from lib.report.response import (
    GONE,
    MATCHED,
    NEW,
    WITHIN,
    ClinicalInputs,
    LesionMatch,
    assess,
    match_lesions,
    prior_on_current_grid,
)
from lib.transforms import Grid, array_xyz, image_from_xyz

from _volumes import sphere_case

STABLE_STEROIDS = ClinicalInputs(steroid_dose="stable", clinical_status="stable")
NO_STEROIDS = ClinicalInputs(steroid_dose="none", clinical_status="stable")
NONE_NEW: list[LesionMatch] = []  # lesion matching found no new lesion


def enhancing(lesion_id: int, product_mm2: float, measurable: bool = True) -> EnhancingLesion:
    """A square-ish enhancing lesion of the given product (its diameters are sqrt(product))."""
    side = math.sqrt(product_mm2)
    diameter = Diameter(side, (0.0, 0.0, 0.0), (side, 0.0, 0.0))
    return EnhancingLesion(lesion_id, product_mm2 / 1000, (0.0, 0.0, 0.0), 5,
                           Bidimensional(3, diameter, diameter, product_mm2), measurable,
                           None if measurable else "diameters below 10 mm")


def scan(*products_mm2: float, et_ml: float = 5.0, measurable: bool = True) -> Measurements:
    """Measurements with enhancing lesions of the given products and an enhancing volume ``et_ml``."""
    lesions = tuple(enhancing(i, p, measurable) for i, p in enumerate(products_mm2, 1))
    targets = select_targets(lesions)
    volumes = {"NCR": 1.0, "ED": 10.0, "ET": et_ml, "TC": 1.0 + et_ml, "WT": 11.0 + et_ml}
    lesion_map = sitk.Image([4, 4, 4], sitk.sitkUInt16)
    return Measurements(Grid.of(lesion_map), 2, 1.0, 10.0, volumes, None, None, (), lesions, targets,
                        float(sum(t.bidimensional.product_mm2 for t in targets)), None, None, None, lesion_map)


def test_partial_response_at_minus_55_percent() -> None:
    r = assess(scan(270.0, 180.0), scan(600.0, 400.0), matches=NONE_NEW, clinical=STABLE_STEROIDS)
    assert r.spd_change_from_prior_percent == pytest.approx(-55.0)
    assert r.bidimensional.category == "PR"
    assert r.bidimensional.reason == "SPD 1000 -> 450 mm² (-55.0 %): partial response"


@pytest.mark.parametrize("current_spd", [600.0, 1200.0])  # -40 %, +20 %
def test_stable_disease_between_the_thresholds(current_spd: float) -> None:
    r = assess(scan(current_spd), scan(1000.0), matches=NONE_NEW, clinical=STABLE_STEROIDS)
    assert (r.bidimensional.category, r.bidimensional.preliminary) == ("SD", False)
    assert r.bidimensional.reason.endswith("stable disease")


def test_progression_is_judged_from_the_nadir() -> None:
    """Nadir 1000, prior 1200, current 1300: +8 % from the prior but +30 % from the nadir."""
    r = assess(scan(1300.0), scan(1200.0), nadir_spd_mm2=1000.0, matches=NONE_NEW, clinical=STABLE_STEROIDS)
    assert r.spd_nadir_mm2 == 1000.0 and r.spd_change_from_nadir_percent == pytest.approx(30.0)
    assert r.spd_change_from_prior_percent == pytest.approx(100 / 12)
    assert r.bidimensional.category == "PD" and "from nadir" in r.bidimensional.reason


def test_imaging_progression_is_preliminary_until_confirmed() -> None:
    prior, current = scan(1000.0), scan(1300.0)
    first = assess(current, prior, matches=NONE_NEW)
    confirmed = assess(current, prior, matches=NONE_NEW, progression_confirmed_by_later_scan=True)
    assert (first.bidimensional.category, first.bidimensional.preliminary) == ("PD", True)
    assert "preliminary" in first.bidimensional.reason
    assert (confirmed.bidimensional.category, confirmed.bidimensional.preliminary) == ("PD", False)


def test_a_new_measurable_lesion_is_progression() -> None:
    matches = [LesionMatch(MATCHED, 1, 1, 500), LesionMatch(NEW, 2, None, 0)]
    r = assess(scan(400.0, 150.0), scan(1000.0), matches=matches, clinical=STABLE_STEROIDS)
    assert r.new_measurable_lesions == (2,)
    assert r.bidimensional.category == "PD" and "new measurable enhancing lesion (2)" in r.bidimensional.reason


def test_complete_response_needs_steroids_stopped() -> None:
    prior, gone = scan(1000.0), scan(et_ml=0.0)
    off = assess(gone, prior, matches=NONE_NEW, clinical=NO_STEROIDS)
    on = assess(gone, prior, matches=NONE_NEW, clinical=STABLE_STEROIDS)
    assert off.bidimensional.category == off.volumetric.category == "CR"
    assert (on.bidimensional.category, on.bidimensional.imaging_category) == ("SD", "CR")
    assert "pending steroid taper" in on.bidimensional.reason


def test_increased_steroids_prevent_a_partial_response() -> None:
    r = assess(scan(400.0), scan(1000.0), matches=NONE_NEW,
               clinical=ClinicalInputs(steroid_dose="increased", clinical_status="stable"))
    assert (r.bidimensional.category, r.bidimensional.imaging_category) == ("SD", "PR")


@pytest.mark.parametrize(("current_et_ml", "category"), [(3.4, "PR"), (4.0, "SD"), (14.5, "PD")])
def test_volumetric_thresholds(current_et_ml: float, category: str) -> None:
    """Enhancing volume 10 mL -> -66 % (PR), -60 % (SD), +45 % (PD); the SPD does not change."""
    r = assess(scan(1000.0, et_ml=current_et_ml), scan(1000.0, et_ml=10.0), matches=NONE_NEW,
               clinical=STABLE_STEROIDS)
    assert r.volumetric.category == category, r.volumetric.reason
    assert r.bidimensional.category == "SD"
    assert r.region_changes["ET"].change_percent == pytest.approx(100 * (current_et_ml / 10 - 1))


def test_clinical_worsening_is_progression() -> None:
    r = assess(scan(450.0), scan(1000.0), matches=NONE_NEW,
               clinical=ClinicalInputs(steroid_dose="stable", clinical_status="worse"))
    assert (r.bidimensional.category, r.bidimensional.imaging_category, r.bidimensional.preliminary) == \
        ("PD", "PR", False)
    assert r.bidimensional.reason.startswith("clinical deterioration")


def test_non_measurable_disease_cannot_respond_partially() -> None:
    prior, current = scan(60.0, et_ml=0.8, measurable=False), scan(20.0, et_ml=0.2, measurable=False)
    r = assess(current, prior, matches=NONE_NEW, clinical=STABLE_STEROIDS)
    assert r.spd_prior_mm2 == 0 and r.spd_change_from_prior_percent is None
    assert not r.bidimensional.measurable_disease and not r.volumetric.measurable_disease
    assert r.bidimensional.category == r.volumetric.category == "SD"
    assert "non-measurable" in r.bidimensional.reason


def test_matching_finds_the_gone_and_the_new_lesion() -> None:
    """Prior: lesions A (large) and B; current: A shrunk, B gone, C new elsewhere. The prior label
    is on the current grid already, as prior_on_current_grid would give it."""
    grid = Grid((60, 60, 30), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    index = np.moveaxis(np.indices(grid.size), 0, -1) * np.asarray(grid.spacing)

    def sphere(centre, radius_mm) -> np.ndarray:
        return np.linalg.norm(index - np.asarray(centre), axis=-1) <= radius_mm

    def label(*spheres: np.ndarray) -> sitk.Image:
        labels = np.zeros(grid.size, np.uint8)
        for s in spheres:
            labels[s] = ET
        return image_from_xyz(labels, grid)

    prior_label = label(sphere((15, 15, 30), 9.0), sphere((45, 45, 30), 7.0))
    current_label = label(sphere((15, 15, 30), 7.0), sphere((45, 12, 30), 6.0))  # C: 12 mm, measurable
    prior, current = measure(prior_label), measure(current_label)
    matches = match_lesions(current, prior, prior_label)
    assert [(m.status, m.current_id, m.prior_id) for m in matches] == [(MATCHED, 1, 1), (NEW, 2, None), (GONE, None, 2)]
    r = assess(current, prior, matches=matches, clinical=STABLE_STEROIDS)
    assert (r.new_lesions, r.new_measurable_lesions, r.gone_lesions) == ((2,), (2,), (2,))
    assert r.bidimensional.category == "PD"
    assert json.loads(json.dumps(r.to_dict()))["bidimensional"]["category"] == "PD"


def test_enhancement_inside_the_prior_tumor_is_not_a_new_lesion() -> None:
    """Prior: an enhancing lesion and, apart from it, a non-enhancing core (NCR) in edema;
    current: the core now enhances. That is known disease, not a new lesion (no PD by a new
    lesion); the same enhancement outside any prior tumor is new."""
    grid = Grid((60, 60, 30), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    index = np.moveaxis(np.indices(grid.size), 0, -1) * np.asarray(grid.spacing)

    def sphere(centre, radius_mm) -> np.ndarray:
        return np.linalg.norm(index - np.asarray(centre), axis=-1) <= radius_mm

    prior = np.zeros(grid.size, np.uint8)
    prior[sphere((42, 42, 30), 14.0)] = ED
    prior[sphere((42, 42, 30), 8.0)] = NCR
    prior[sphere((15, 15, 30), 7.0)] = ET
    current = np.zeros(grid.size, np.uint8)
    current[sphere((15, 15, 30), 7.0)] = ET
    current[sphere((42, 42, 30), 6.0)] = ET
    prior_label, current_label = image_from_xyz(prior, grid), image_from_xyz(current, grid)
    matches = match_lesions(measure(current_label), measure(prior_label), prior_label)
    assert [(m.status, m.current_id) for m in matches] == [(MATCHED, 1), (WITHIN, 2)]
    r = assess(measure(current_label), measure(prior_label), matches=matches, clinical=STABLE_STEROIDS)
    assert r.new_lesions == ()
    no_prior_tumor = image_from_xyz(np.where(prior == ET, ET, 0).astype(np.uint8), grid)
    assert [m.status for m in match_lesions(measure(current_label), measure(prior_label), no_prior_tumor)] == \
        [MATCHED, NEW]


def test_prior_on_current_grid_undoes_a_rigid_shift() -> None:
    """The prior scan is the current one moved by (3.3, -2.6, 1.7) mm: after registration and
    resampling its label lies on the current label within a voxel (2 mm)."""
    images, current_label = sphere_case(size=(64, 64, 48), spacing=(2.0, 2.0, 2.0))
    current = images["t1c"]
    shifted_origin = tuple(np.asarray(current.GetOrigin()) + [3.3, -2.6, 1.7])
    prior, prior_label = sitk.Image(current), sitk.Image(current_label)
    prior.SetOrigin(shifted_origin)
    prior_label.SetOrigin(shifted_origin)
    on_current = prior_on_current_grid(prior_label, prior, current)
    assert Grid.of(on_current).matches(Grid.of(current))
    back, truth = array_xyz(on_current), array_xyz(current_label)
    for value in (ED, ET):
        a, b = back == value, truth == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.85
        assert np.linalg.norm((np.argwhere(a).mean(0) - np.argwhere(b).mean(0)) * 2.0) < 2.0
