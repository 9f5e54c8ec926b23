"""Harmonization across sites: one subject scanned at two sites, white matter compared."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.stats import ks_2samp

from lib.brats import SEQUENCES
from lib.transforms import build_preprocessing, learn_landmarks
from synthbrats import GeneratorConfig, generate_case, write_case
from synthbrats.case import draw_case_site

FAST = GeneratorConfig(spacing=2.0, style="brats", kind="glioblastoma")


def scan_at(site, out: Path) -> dict:
    """Write subject (21, 0) as scanned at ``site``; its healthy white matter as the label."""
    case = generate_case(21, 0, FAST, site)
    folder = write_case(case, out)
    wm_path = out / "white_matter.nii.gz"
    sitk.WriteImage(case.white_matter, str(wm_path))
    return {"image": str(folder), "label": str(wm_path)}


def white_matter_ks(pre, site_a: dict, site_b: dict) -> float:
    """Mean over sequences of the Kolmogorov-Smirnov distance between the two sites'
    white-matter intensity distributions as the network would see them."""
    a, b = pre(dict(site_a)), pre(dict(site_b))
    wm = (a["label"][0] > 0) & (b["label"][0] > 0)
    return float(np.mean([ks_2samp(a["image"][i][wm], b["image"][i][wm]).statistic for i in range(len(SEQUENCES))]))


def test_harmonization_reduces_between_site_white_matter_difference(tmp_path: Path) -> None:
    site_a = draw_case_site(21, 0, FAST)
    # site B: another scanner: 4x the signal scale, stronger gamma and bias, more noise
    site_b = dataclasses.replace(site_a, acquisitions={
        s: dataclasses.replace(acq, wm_level=acq.wm_level * 4.0, gamma=acq.gamma * 1.4,
                               bias_strength=acq.bias_strength + 0.1, noise=acq.noise * 1.5)
        for s, acq in site_a.acquisitions.items()})
    a, b = scan_at(site_a, tmp_path / "site_a"), scan_at(site_b, tmp_path / "site_b")

    training = [{"image": str(write_case(generate_case(30, i, FAST), tmp_path / "train"))} for i in range(3)]
    landmarks = learn_landmarks(training, tmp_path / "model" / "landmarks.json")

    raw = white_matter_ks(build_preprocessing(normalize=False, with_label=True), a, b)
    zscore = white_matter_ks(build_preprocessing(with_label=True), a, b)
    nyul = white_matter_ks(build_preprocessing(landmarks=landmarks, with_label=True), a, b)
    print(f"\nwhite-matter KS distance between sites: raw {raw:.3f}, z-score {zscore:.3f}, "
          f"Nyul + z-score {nyul:.3f}")
    assert raw > 0.9                      # raw intensities of the two sites barely overlap
    assert zscore < raw / 2
    assert nyul < raw / 2
    assert nyul < zscore                # learned landmarks do better than z-score alone
