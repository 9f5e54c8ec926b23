"""The one preprocessing pipeline shared by training and inference."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from monai.transforms import Compose

from lib.brats import SEQUENCES
from lib.errors import InputError

from .brainmask import BrainMaskd, CropToMaskd
from .geometry import CoRegisterd, ReorientToRASd, ResampleToRASGridd, StackSequencesd
from .harmonization import N4BiasCorrectiond, NyulLandmarks, NyulStandardized, ZScoreNormalized
from .io import LoadCased
from .quality import SignalDropoutd


def build_preprocessing(*, landmarks: NyulLandmarks | str | Path | None = None, n4: bool = False,
                        with_label: bool | Literal["auto"] = "auto", normalize: bool = True,
                        spacing: float = 1.0, crop_margin: int = 8,
                        mask_method: Literal["auto", "nonzero", "otsu"] = "auto") -> Compose:
    """Build the shared preprocessing ``Compose``.

    Input dict: ``{"image": <case folder | 4-channel file | {seq: path} | [4 paths]>,
    "label": <path, optional>, "case_id": <optional>}``.

    Steps: load + validate -> reorient (RAS, no interpolation) -> rigid co-registration
    onto t1c where grids differ -> one resampling onto a ``spacing`` mm RAS grid covering
    t1c (labels: one-hot linear + argmax) -> stack -> brain mask -> crop (+``crop_margin``)
    -> signal-dropout measurement -> [N4 if ``n4``] -> [Nyúl if ``landmarks``] -> [z-score if
    ``normalize``].

    ``with_label``: True = a label is required (training), False = ignored (inference),
    "auto" = loaded if present. ``normalize=False`` and ``landmarks=None`` give the
    un-normalised intensities used to learn landmarks (:func:`learn_landmarks`).

    Output dict: ``image`` float32 (4, X, Y, Z), channels t1n, t1c, t2w, t2f, RAS, ``spacing`` mm;
    ``label`` uint8 (1, X, Y, Z) when loaded; ``brain_mask`` uint8 (1, X, Y, Z);
    ``geometry`` (:class:`CaseGeometry`, for :func:`restore_label`); ``case_id``;
    ``skull_stripped``; ``source_files``; ``registration`` (per-sequence results or None);
    ``signal_dropout`` (:class:`lib.transforms.quality.SignalDropoutd`).
    """
    label_mode: Literal["required", "never", "auto"] = \
        "required" if with_label is True else "never" if with_label is False else "auto"
    transforms: list[Any] = [
        LoadCased("image", "label", label=label_mode),
        ReorientToRASd((*SEQUENCES, "label")),
        CoRegisterd(),
        ResampleToRASGridd(SEQUENCES, ("label",), spacing=spacing),
        StackSequencesd(SEQUENCES, "image", ("label",)),
        BrainMaskd("image", "brain_mask", method=mask_method),
        CropToMaskd(("image", "label", "brain_mask"), "brain_mask", margin=crop_margin),
        SignalDropoutd(spacing, "image", "brain_mask"),
    ]
    if n4:
        transforms.append(N4BiasCorrectiond("image", "brain_mask"))
    if landmarks is not None:
        transforms.append(NyulStandardized(landmarks, "image", "brain_mask"))
    if normalize:
        transforms.append(ZScoreNormalized("image", "brain_mask"))
    # the SimpleITK transforms of the registration step are not part of the output
    transforms.append(_DropIntermediates())
    return PreprocessingCompose(transforms, map_items=False)


class PreprocessingCompose(Compose):
    """``Compose`` that lets the typed :class:`lib.errors.InputError` through: MONAI wraps
    exceptions raised inside a transform in ``RuntimeError``; the original is re-raised."""

    def __call__(self, input_: Any, start: int = 0, end: int | None = None, threading: bool = False,
                 lazy: bool | None = None) -> Any:
        try:
            return super().__call__(input_, start, end, threading, lazy)
        except RuntimeError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, InputError):
                cause = cause.__cause__
            if cause is not None:
                raise cause from None
            raise


class _DropIntermediates:
    """Remove intermediate keys (SimpleITK transforms) that are not part of the output."""

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        d.pop("transforms", None)
        return d


def learn_landmarks(cases: Iterable[dict[str, Any]], out_path: str | Path, *, n4: bool = False,
                    **fit_kwargs: Any) -> NyulLandmarks:
    """Learn Nyúl landmarks from training cases (input dicts as for :func:`build_preprocessing`),
    run through the same pipeline without normalisation, and save them atomically at
    ``out_path`` (a JSON file that ``build_preprocessing(landmarks=...)`` reads; checkpoints carry
    their own landmarks)."""
    pre = build_preprocessing(landmarks=None, n4=n4, with_label=False, normalize=False)
    lm = NyulLandmarks.fit_from_data((pre(c) for c in cases), **fit_kwargs)
    lm.save(out_path)
    return lm
