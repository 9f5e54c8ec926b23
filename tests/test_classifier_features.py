"""The classifier's voxel features on analytic volumes: mirror asymmetry, the FLAIR floor, position."""

from __future__ import annotations

import numpy as np
import pytest

from lib.brats import SEQUENCES
from lib.classifier.features import midline_vox, mirror
from lib.classifier.model import base_features

SHAPE = (40, 36, 32)
FLAIR = SEQUENCES.index("t2f")


def _ball(centre: tuple[float, float, float], radius: float) -> np.ndarray:
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius ** 2


def _case(image: np.ndarray, brain: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": image.astype(np.float32), "brain_mask": brain.astype(np.uint8)[None]}


def _feature(out: dict, name: str) -> np.ndarray:
    volume = np.zeros(int(np.prod(SHAPE)), np.float32)
    volume[out["voxel_index"]] = out["voxels"][:, out["feature_names"].index(name)]
    return volume.reshape(SHAPE)


@pytest.fixture(scope="module")
def brain() -> np.ndarray:
    # symmetric about x = 19.5 (the array's middle): the midline is found there
    return _ball((19.5, 17.5, 15.5), 15)


def test_the_midline_is_the_brain_centre_and_mirroring_twice_is_the_identity(brain):
    assert midline_vox(brain) == pytest.approx(19.5)
    shifted = np.roll(brain, 3, axis=0)
    assert midline_vox(shifted) == pytest.approx(22.5)
    rng = np.random.default_rng(0)
    volume = rng.normal(size=SHAPE).astype(np.float32)
    assert np.allclose(mirror(mirror(volume, 22.5), 22.5)[6:-6], volume[6:-6])  # off-centre, integer shift
    assert mirror(volume, 19.5)[0, 5, 5] == volume[-1, 5, 5]


def test_a_volume_mirrored_about_the_midline_has_no_asymmetry(brain):
    image = np.zeros((4, *SHAPE), np.float32)
    lesions = _ball((10.5, 17.5, 15.5), 4) | _ball((28.5, 17.5, 15.5), 4)  # a sphere and its mirror image
    image[:, lesions] = 3.0
    out = base_features(2.0)(_case(image, brain))
    for seq in SEQUENCES:
        for sigma in ("1", "2", "4"):
            assert np.abs(_feature(out, f"{seq}_mirror{sigma}")[brain]).max() < 1e-5


def test_a_lesion_on_one_side_is_positive_there_and_negative_opposite(brain):
    image = np.zeros((4, *SHAPE), np.float32)
    lesion = _ball((28.5, 17.5, 15.5), 4)  # the patient's right (RAS: x grows to the right)
    image[FLAIR, lesion] = 3.0
    out = base_features(2.0)(_case(image, brain))
    asymmetry = _feature(out, "t2f_mirror2")
    assert asymmetry[28, 17, 15] > 1.0 and asymmetry[11, 17, 15] < -1.0
    assert asymmetry[28, 17, 15] == pytest.approx(-asymmetry[11, 17, 15], abs=1e-4)
    assert np.abs(_feature(out, "t1n_mirror2")[brain]).max() < 1e-6  # the other sequences stay symmetric


def test_position_features_are_in_millimetres_and_box_fractions(brain):
    out = base_features(2.0)(_case(np.zeros((4, *SHAPE)), brain))
    assert _feature(out, "edge_mm")[19, 17, 15] == pytest.approx(2.0 * 15, abs=2.0)  # centre: 15 voxels deep
    assert _feature(out, "midline_mm")[29, 17, 15] == pytest.approx(2.0 * 9.5)
    pos_x = _feature(out, "pos_x")
    assert pos_x[brain].min() == pytest.approx(0.0) and pos_x[brain].max() == pytest.approx(1.0)
    assert out["voxels"].shape == (int(brain.sum()), len(out["feature_names"]))


def test_the_flair_floor_is_the_largest_bright_component(brain):
    from lib.classifier.features import flair_floor_mask

    flair = np.zeros(SHAPE, np.float32)
    big, small = _ball((12, 17, 15), 5), _ball((28, 17, 15), 2)
    flair[big | small] = 5.0
    floor = flair_floor_mask(flair, brain)
    assert floor[big].mean() > 0.9 and not floor[small].any()
