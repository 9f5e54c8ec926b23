"""How a segmentation is scored against a reference, in physical units.

Regions are the evaluated BraTS regions (WT = 1+2+3, TC = 1+3, ET = 3), never raw label
values. Used by training (ranking epochs and deciding what to publish) and by the model
evaluation in ``bench/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from lib.infers.pipeline import TumorSegmenter
from lib.model import Checkpoint, PredictionSettings
from lib.postprocessing import REGION_ORDER, labels_to_regions

#: A case "has enhancing tumor" when its ET is at least this large (mL); for a case without,
#: a prediction of less than this much ET counts as right (ET score 1), more as wrong (0).
ENHANCING_MIN_ML = 1.0


def region_dice(pred_labels: np.ndarray, true_labels: np.ndarray) -> dict[str, float]:
    """Dice of WT, TC, ET between two label maps of the same shape; 1.0 when a region is
    absent from both."""
    p, t = labels_to_regions(pred_labels) > 0, labels_to_regions(true_labels) > 0
    out = {}
    for i, name in enumerate(REGION_ORDER):
        denom = p[i].sum() + t[i].sum()
        out[name] = 1.0 if denom == 0 else float(2.0 * (p[i] & t[i]).sum() / denom)
    return out


def mean_score(dice: dict[str, float]) -> float:
    """The one number models are ranked by: the mean of the regions' Dice (-1 when empty)."""
    return float(np.mean(list(dice.values()))) if dice else -1.0


def hausdorff95_mm(pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float]) -> float | None:
    """95th percentile of the symmetric surface distances (mm) between two binary masks on a
    grid of voxel size ``spacing_mm`` (same axis order as the arrays); None when either is empty."""
    if not pred.any() or not truth.any():
        return None
    structure = ndimage.generate_binary_structure(3, 1)
    surface_p = pred & ~ndimage.binary_erosion(pred, structure)
    surface_t = truth & ~ndimage.binary_erosion(truth, structure)
    to_t = ndimage.distance_transform_edt(~surface_t, sampling=spacing_mm)
    to_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing_mm)
    distances = np.concatenate([to_t[surface_p], to_p[surface_t]])
    return float(np.percentile(distances, 95))


def case_metrics(pred_labels: np.ndarray, true_labels: np.ndarray, spacing_mm: Sequence[float], *,
                 hd95: bool = True) -> dict[str, Any]:
    """Everything reported for one case (arrays on the same grid of voxel size ``spacing_mm``):
    per region Dice, HD95 (mm), predicted and true volume (mL); the WT volume predicted
    outside the reference tumor (``wt_outside_ml``) and in components that touch no reference
    lesion (``false_lesions_ml``); and the ET score of the enhancement rule
    (:data:`ENHANCING_MIN_ML`). ``hd95`` False leaves the distances out (None): they are most of
    the cost on a 1 mm grid."""
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    p, t = labels_to_regions(pred_labels) > 0, labels_to_regions(true_labels) > 0
    dice = region_dice(pred_labels, true_labels)
    out: dict[str, Any] = {"dice": dice, "hd95_mm": {}, "predicted_ml": {}, "true_ml": {}}
    for i, name in enumerate(REGION_ORDER):
        out["hd95_mm"][name] = hausdorff95_mm(p[i], t[i], spacing_mm) if hd95 else None
        out["predicted_ml"][name] = round(float(p[i].sum()) * voxel_ml, 3)
        out["true_ml"][name] = round(float(t[i].sum()) * voxel_ml, 3)
    wt_p, wt_t = p[0], t[0]
    out["wt_outside_ml"] = round(float((wt_p & ~wt_t).sum()) * voxel_ml, 3)
    components, n = ndimage.label(wt_p, np.ones((3, 3, 3), bool))
    touching = np.unique(components[wt_t & (components > 0)])
    false_lesions = (components > 0) & ~np.isin(components, touching)
    out["false_lesions_ml"] = round(float(false_lesions.sum()) * voxel_ml, 3)
    enhancing = out["true_ml"]["ET"] >= ENHANCING_MIN_ML
    out["enhancing"] = enhancing
    out["et_score"] = dice["ET"] if enhancing else float(out["predicted_ml"]["ET"] < ENHANCING_MIN_ML)
    return out


def working_grid_labels(model: Checkpoint, image: np.ndarray, brain_mask: np.ndarray) -> np.ndarray:
    """Labels (X, Y, Z) uint8 that ``model`` gives a normalised case ``image`` (4, X, Y, Z) with
    its ``brain_mask`` (1, X, Y, Z) on its working grid: the served prediction (CPU) and
    postprocessing, without restoring the label onto the input grid. For studies of a model on
    prepared cases (:func:`lib.trainers.data.prepare_case` + ``normalize_case``)."""
    data = {"image": image, "brain_mask": brain_mask}
    regions = model.region_probabilities(data, PredictionSettings(roi_size=model.roi_size, device="cpu"))
    return model.labels(regions, data)


def score_checkpoint(checkpoint: str | Path, cases: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean region Dice of a checkpoint over labelled cases (``{"case_id", "image", "label"}``),
    each segmented through the served pipeline and compared on its own t1c grid."""
    segmenter = TumorSegmenter([checkpoint])
    scores = []
    for case in cases:
        predicted = sitk.GetArrayFromImage(segmenter.segment(case["image"], case["case_id"]).label)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case["label"])))
        scores.append(region_dice(predicted, truth))
    return {name: float(np.mean([s[name] for s in scores])) for name in REGION_ORDER} if scores else {}
