"""Postprocessing: region maps to nested BraTS labels, small-lesion cleanup, volumes."""

from __future__ import annotations

import numpy as np
import pytest

from lib.brats import ED, ET, NCR, SEQUENCES
from lib.postprocessing import (
    label_volumes_ml,
    postprocess,
    regions_to_labels,
    relabel_unenhancing,
    remove_coreless_lesions,
    remove_small_lesions,
)


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return ((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(0) <= radius ** 2


def test_regions_nest_into_brats_labels() -> None:
    shape = (40, 40, 40)
    wt, tc, et = ball(shape, (20, 20, 20), 12), ball(shape, (20, 20, 20), 7), ball(shape, (20, 20, 20), 3)
    labels = regions_to_labels(np.stack([wt, tc, et]).astype(np.float32))
    assert (labels[et] == ET).all()
    assert (labels[tc & ~et] == NCR).all()
    assert (labels[wt & ~tc] == ED).all()
    assert (labels[~wt] == 0).all()


def test_core_outside_whole_tumor_still_counts_as_tumor() -> None:
    regions = np.zeros((3, 4, 4, 4), np.float32)
    regions[1, 1, 1, 1] = 0.9   # TC without WT at voxel (1, 1, 1)
    assert regions_to_labels(regions)[1, 1, 1] == NCR


def test_wrong_region_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(3, X, Y, Z\)"):
        regions_to_labels(np.zeros((4, 8, 8, 8)))


def test_small_isolated_lesion_is_removed_and_large_kept() -> None:
    shape = (60, 30, 30)
    labels = np.zeros(shape, np.uint8)
    labels[ball(shape, (15, 15, 15), 8)] = ED
    labels[ball(shape, (48, 15, 15), 1)] = ED   # 7 voxels = 0.007 mL at 1 mm
    cleaned = remove_small_lesions(labels, (1, 1, 1), min_tumor_ml=0.1)
    assert cleaned[48, 15, 15] == 0
    assert (cleaned[ball(shape, (15, 15, 15), 8)] == ED).all()
    assert labels[48, 15, 15] == ED   # input untouched


def test_enhancing_speck_becomes_core() -> None:
    shape = (30, 30, 30)
    labels = np.zeros(shape, np.uint8)
    labels[ball(shape, (15, 15, 15), 8)] = NCR
    labels[15, 15, 15] = ET
    assert remove_small_lesions(labels, (1, 1, 1))[15, 15, 15] == NCR


def two_cores(shape=(60, 30, 30)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, t1c, brain): two tumors, each an ET ball in a NCR ball in edema, in a brain whose
    T1c is normal noise (mean 0, sd 1); the left ET is bright on T1c (mean 3), the right one not."""
    rng = np.random.default_rng(0)
    labels = np.zeros(shape, np.uint8)
    t1c = rng.normal(0.0, 1.0, shape).astype(np.float32)
    for centre in ((15, 15, 15), (45, 15, 15)):
        labels[ball(shape, centre, 10)] = ED
        labels[ball(shape, centre, 7)] = NCR
        labels[ball(shape, centre, 4)] = ET
    t1c[ball(shape, (15, 15, 15), 4)] += 3.0
    return labels, t1c, np.ones(shape, bool)


def test_enhancing_tumor_that_does_not_enhance_on_t1c_becomes_core() -> None:
    labels, t1c, brain = two_cores()
    out = relabel_unenhancing(labels, t1c, brain)
    assert (out[ball(labels.shape, (15, 15, 15), 4)] == ET).all()
    assert (out[ball(labels.shape, (45, 15, 15), 4)] == NCR).all()
    assert np.array_equal(out > 0, labels > 0) and np.array_equal(np.isin(out, (NCR, ET)), np.isin(labels, (NCR, ET)))


def test_an_enhancing_rim_around_a_dull_centre_stays_enhancing() -> None:
    labels, t1c, brain = two_cores()
    rim = ball(labels.shape, (45, 15, 15), 4) & ~ball(labels.shape, (45, 15, 15), 3)   # about half the ET
    t1c[rim] += 3.0
    assert (relabel_unenhancing(labels, t1c, brain)[ball(labels.shape, (45, 15, 15), 4)] == ET).all()


def test_enhancement_is_judged_against_the_brain_outside_the_tumor_whatever_the_scale() -> None:
    labels, t1c, brain = two_cores()
    rescaled = relabel_unenhancing(labels, 40.0 * t1c + 300.0, brain)   # e.g. Nyul or raw units
    assert np.array_equal(rescaled, relabel_unenhancing(labels, t1c, brain))
    assert np.array_equal(relabel_unenhancing(labels, t1c, np.zeros_like(brain)), labels)   # no brain to compare


def test_served_postprocessing_reads_t1c_from_the_image_channels() -> None:
    labels, t1c, brain = two_cores()
    regions = np.stack([labels > 0, np.isin(labels, (NCR, ET)), labels == ET]).astype(np.float32)
    image = np.zeros((len(SEQUENCES), *labels.shape), np.float32)
    image[SEQUENCES.index("t1c")] = t1c
    out = postprocess(regions, (1.0, 1.0, 1.0), image, brain[None])
    assert out[15, 15, 15] == ET and out[45, 15, 15] == NCR


def test_volumes_in_millilitres_follow_spacing() -> None:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:2] = NCR      # 200 voxels
    labels[2:5] = ED      # 300
    labels[5:6] = ET      # 100
    v = label_volumes_ml(labels, (2.0, 1.0, 1.0))   # 2 uL per voxel
    assert v == {"NCR": 0.4, "ED": 0.6, "ET": 0.2, "WT": 1.2, "TC": 0.6}



def test_edema_without_a_core_is_not_a_lesion_unless_no_lesion_has_one() -> None:
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[2:12, 2:12, 2:12] = ED
    labels[5:8, 5:8, 5:8] = NCR               # a tumor: edema around a core
    labels[20:26, 20:26, 20:26] = ED          # FLAIR-bright tissue somewhere else
    cleaned = remove_coreless_lesions(labels)
    assert (cleaned[20:26, 20:26, 20:26] == 0).all()
    assert np.array_equal(cleaned[:15, :15, :15], labels[:15, :15, :15])
    only_edema = np.where(labels == NCR, ED, labels).astype(np.uint8)
    assert np.array_equal(remove_coreless_lesions(only_edema), only_edema)
