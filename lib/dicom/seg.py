"""BraTS labels as DICOM Segmentations (highdicom), and back.

A label map on the grid of a t1c series becomes a binary SEG with three segments that
keep the label values: 1 NCR, 2 ED, 3 ET, with SNOMED CT category and type codes and a
recommended display colour. Model output is marked AUTOMATIC with the algorithm's name
and version; a clinician's correction is MANUAL. The SEG references the source series,
so a viewer shows it over the study, and reading it back gives the label voxel for voxel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from lib.brats import ED, ET, NCR
from lib.compat import require_highdicom_on_numpy2
from lib.errors import InvalidLabelError

from .volume import slice_order

SOFTWARE = "BrainTumorLabel"


@dataclass(frozen=True)
class SegmentSpec:
    value: int
    label: str
    description: str
    property_type: Code
    rgb: tuple[int, int, int]


#: Algorithm family of model output (CID 7162).
ARTIFICIAL_INTELLIGENCE: Code = cast(Any, codes).cid7162.ArtificialIntelligence
MORPHOLOGICALLY_ALTERED = Code("49755003", "SCT", "Morphologically Altered Structure")
SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(NCR, "NCR", "Necrotic and non-enhancing tumor core", Code("6574001", "SCT", "Necrosis"),
                (230, 40, 40)),
    SegmentSpec(ED, "ED", "Peritumoral edema", Code("79654002", "SCT", "Edema"), (40, 200, 60)),
    SegmentSpec(ET, "ET", "Enhancing tumor", Code("108369006", "SCT", "Neoplasm"), (250, 220, 30)),
)


def _srgb_to_dicom_lab(rgb: tuple[int, int, int]) -> list[int]:
    """sRGB (0-255) -> CIELab (D65) -> the DICOM 16-bit encoding of RecommendedDisplayCIELabValue."""
    c = np.asarray(rgb, float) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = (116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2]))
    return [round(lab[0] * 65535 / 100), round((lab[1] + 128) * 65535 / 255), round((lab[2] + 128) * 65535 / 255)]


def label_to_seg(label: np.ndarray, source: Sequence[pydicom.Dataset], *, manual: bool, algorithm: str,
                 algorithm_version: str, series_number: int = 900, creator: str | None = None) -> hd.seg.Segmentation:
    """A DICOM SEG for ``label`` (uint8 (slices, rows, cols) in the slice order of
    :func:`lib.dicom.volume.slice_order` of ``source``, the t1c series instances).

    ``manual``: a clinician's correction (MANUAL) or model output (AUTOMATIC, with
    ``algorithm`` and ``algorithm_version``). Raises :class:`InvalidLabelError` when the
    label's shape does not match the series or it has values outside {0, 1, 2, 3}.
    """
    require_highdicom_on_numpy2()
    ordered = [source[i] for i in slice_order(source)]
    expected = (len(ordered), int(ordered[0].Rows), int(ordered[0].Columns))
    if label.shape != expected:
        raise InvalidLabelError(f"label shape {label.shape} does not match the t1c series {expected}")
    values = np.unique(label)
    if not np.isin(values, [0, NCR, ED, ET]).all():
        raise InvalidLabelError(f"label has values outside {{0, 1, 2, 3}}: {values[:10].tolist()}")
    algorithm_id = None if manual else hd.AlgorithmIdentificationSequence(
        name=algorithm, version=algorithm_version, family=ARTIFICIAL_INTELLIGENCE)
    descriptions = []
    for spec in SEGMENTS:
        description = hd.seg.SegmentDescription(
            segment_number=spec.value, segment_label=spec.label,
            segmented_property_category=MORPHOLOGICALLY_ALTERED, segmented_property_type=spec.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual
            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm_id,
            anatomic_regions=[Code("12738006", "SCT", "Brain")])
        description.SegmentDescription = spec.description
        description.RecommendedDisplayCIELabValue = _srgb_to_dicom_lab(spec.rgb)
        descriptions.append(description)
    kind = "correction" if manual else f"{algorithm} {algorithm_version}"
    return hd.seg.Segmentation(
        source_images=ordered, pixel_array=np.ascontiguousarray(label.astype(np.uint8)),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=SOFTWARE, manufacturer_model_name=algorithm, software_versions=algorithm_version,
        device_serial_number="1", content_label="TUMOR", content_description=f"Brain tumor ({kind})"[:64],
        content_creator_name=creator if manual and creator else None, omit_empty_frames=False)


#: The private block in which a SEG carries the label version's record (who, when, which model...).
PRIVATE_GROUP, PRIVATE_CREATOR = 0x0011, "BrainTumorLabel"


def set_record(seg: pydicom.Dataset, record: dict[str, Any]) -> None:
    """Store a label version's record (JSON) in the SEG's private block, so a server reading the
    PACS later knows who made the version and from what."""
    block = seg.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LT", json.dumps(record, default=str)[:10240])


def get_record(seg: pydicom.Dataset) -> dict[str, Any]:
    """The record :func:`set_record` stored; empty for a SEG written by anything else."""
    try:
        value = seg.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)[0x01].value
        record = json.loads(value)
    except (KeyError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def seg_to_label(seg: pydicom.Dataset, source: Sequence[pydicom.Dataset]) -> np.ndarray:
    """The label map (uint8 (slices, rows, cols), :func:`slice_order` of ``source``) of a SEG
    written by :func:`label_to_seg` for that series."""
    segmentation = hd.seg.Segmentation.from_dataset(seg, copy=False)
    ordered = [source[i] for i in slice_order(source)]
    uids = [str(ds.SOPInstanceUID) for ds in ordered]
    numbers = [s for s in segmentation.get_segment_numbers()]
    pixels = segmentation.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=numbers, combine_segments=True, relabel=False)
    return np.asarray(pixels, np.uint8)
