"""MONAI Label inference task: a thin adapter from a request to :class:`TumorSegmenter`."""

from __future__ import annotations

import tempfile
from typing import Any

import SimpleITK as sitk
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from lib.brats import LABEL_NAMES
from lib.errors import ModelUnavailableError

from .pipeline import TumorSegmenter


class BrainTumorSegmentation(InferTask):
    """Segments NCR (1), ED (2) and ET (3) from the four sequences of a study.

    ``request["image"]``: a case folder or a 4-channel file (the app resolves image ids).
    Returns the label file (NIfTI, on the study's t1c grid) and a JSON result with the label
    names, volumes in mL (NCR, ED, ET, TC, WT), model version, device and stage timings.
    """

    def __init__(self, segmenter: TumorSegmenter) -> None:
        super().__init__(type=InferType.SEGMENTATION, labels={name: value for value, name in LABEL_NAMES.items()
                                                               if value},
                         dimension=3, description="Brain tumor sub-regions from t1n, t1c, t2w, t2f (SegResNet)")
        self.segmenter = segmenter

    def is_valid(self) -> bool:
        return any(p.is_file() for p in self.segmenter.candidates)

    def info(self) -> dict[str, Any]:
        """MONAI Label's task info, with the model served (or why none can be)."""
        info = super().info()
        info["sequences"] = ["t1n", "t1c", "t2w", "t2f"]
        try:
            model = self.segmenter.checkpoint()
        except ModelUnavailableError as exc:
            return {**info, "model_version": None, "model_warning": str(exc)}
        info.update({"model_version": model.version, "model_file": model.path.name if model.path else None,
                     "validation_dice": model.training.get("val_dice")})
        if self.segmenter.warning:
            info["model_warning"] = self.segmenter.warning
        return info

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        result = self.segmenter.segment(request["image"], request.get("case_id"))
        out = tempfile.NamedTemporaryFile(suffix=".nii.gz", delete=False).name
        sitk.WriteImage(result.label, out, useCompression=True)
        return out, {
            "label_names": {name: value for value, name in LABEL_NAMES.items() if value},
            "volumes_ml": result.volumes_ml,
            "model_version": result.model_version,
            "device": result.device,
            "latencies": result.seconds,
            "notes": result.notes,
        }
