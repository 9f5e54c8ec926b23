"""z-score, Nyúl landmarks (fit, atomic save, load, apply) and N4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lib.brats import SEQUENCES
from lib.errors import InputError
from lib.transforms import N4BiasCorrectiond, NyulLandmarks, NyulStandardized, ZScoreNormalized, n4_bias_correct


def _brain(shape=(40, 40, 40), seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = np.indices(shape).T - (np.asarray(shape) - 1) / 2
    mask = (np.sqrt((g ** 2).sum(-1)).T < 16)
    # two tissue classes + noise: a bimodal brain histogram
    vol = np.where(np.indices(shape)[0] < shape[0] // 2, 300.0, 600.0) + rng.normal(0, 40, shape)
    return (vol * mask).astype(np.float32), mask


def test_zscore_inside_brain_background_zero() -> None:
    vol, mask = _brain()
    img = np.stack([vol * (i + 1) + 50 * i for i in range(4)])
    d = ZScoreNormalized()({"image": img, "brain_mask": mask[None].astype(np.uint8)})
    for c in d["image"]:
        assert abs(float(c[mask].mean())) < 1e-4 and abs(float(c[mask].std()) - 1) < 1e-4
        assert (c[~mask] == 0).all()
    assert d["image"].dtype == np.float32


def _sample(vol: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    return {s: vol[mask] for s in SEQUENCES}


def test_nyul_fit_save_load_apply_maps_distorted_image_to_standard(tmp_path: Path) -> None:
    vol, mask = _brain()
    train = [_sample(vol * a + b, mask) for a, b in ((1.0, 0.0), (1.3, 20.0), (0.8, -10.0))]
    lm = NyulLandmarks.fit(train)
    path = lm.save(tmp_path / "landmarks.json")
    loaded = NyulLandmarks.load(path)
    assert loaded == lm
    # another "site": different scale and a gamma
    site = np.where(mask, (3.0 * vol / vol.max()) ** 1.7 * 1000 + 77, 0).astype(np.float32)
    img = np.stack([site] * 4)
    out = NyulStandardized(path)({"image": img, "brain_mask": mask[None].astype(np.uint8)})["image"]
    for i, s in enumerate(SEQUENCES):
        got = np.percentile(out[i][mask], loaded.percentiles)
        np.testing.assert_allclose(got, loaded.standard[s], atol=0.5)  # standard scale 0..100
        assert (out[i][~mask] == 0).all()


def test_nyul_output_monotonic_in_input() -> None:
    vol, mask = _brain()
    lm = NyulLandmarks.fit([_sample(vol, mask)])
    out = lm.apply(vol, mask, "t1c")
    order = np.argsort(vol[mask])
    assert np.all(np.diff(out[mask][order]) >= -1e-4)


def test_landmarks_save_is_atomic_and_failure_keeps_old_file(tmp_path: Path) -> None:
    vol, mask = _brain()
    lm = NyulLandmarks.fit([_sample(vol, mask)])
    path = tmp_path / "landmarks.json"
    lm.save(path)
    before = path.read_bytes()
    broken = NyulLandmarks(lm.percentiles, {**lm.standard, "t1n": [float("nan")] * len(lm.percentiles)})
    with pytest.raises(ValueError):
        broken.save(path)  # fails while writing the temp file
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landmarks.json"]  # no temp left over
    json.loads(before)


def test_landmarks_load_rejects_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "landmarks.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(InputError) as ei:
        NyulLandmarks.load(path)
    assert "landmarks.json" in str(ei.value)


def test_n4_removes_smooth_bias_inside_mask() -> None:
    vol, mask = _brain(shape=(48, 48, 48))
    x = np.linspace(-1, 1, 48)
    bias = np.exp(0.3 * x)[:, None, None] * np.ones((48, 48, 48))
    corrected = n4_bias_correct(vol * bias, mask)
    left = mask & (np.indices(vol.shape)[0] >= 24)  # one tissue class, bias spans 0.74..1.35
    cv_before = (vol * bias)[left].std() / (vol * bias)[left].mean()
    cv_after = corrected[left].std() / corrected[left].mean()
    assert cv_after < cv_before
    assert (corrected[~mask] == 0).all()


def test_n4_transform_corrects_each_sequence_with_its_own_field() -> None:
    vol, mask = _brain(shape=(48, 48, 48))
    x = np.linspace(-1, 1, 48)
    along_x = np.exp(0.3 * x)[:, None, None] * np.ones((48, 48, 48))
    along_z = np.exp(-0.3 * x)[None, None, :] * np.ones((48, 48, 48))
    image = np.stack([vol * along_x, vol * along_z, vol, vol]).astype(np.float32)
    out = N4BiasCorrectiond(field_spacing_mm=4.0)({"image": image, "brain_mask": mask[None].astype(np.uint8)})["image"]
    one_class = mask & (np.indices(vol.shape)[0] >= 24) & (np.indices(vol.shape)[2] >= 24)

    def cv(a: np.ndarray) -> float:
        return float(a[one_class].std() / a[one_class].mean())

    assert out.shape == image.shape and out.dtype == np.float32
    assert cv(out[0]) < cv(image[0]) and cv(out[1]) < cv(image[1])
    assert (out[:, ~mask] == 0).all()
