"""The segments the server produces: value, name, colour and standard terminology.

The same table as the server's (``lib/brats.py`` for values and names, ``lib/dicom/seg.py``
for SNOMED CT codes and colours); ``tests/slicer_extension/test_lib_labels.py`` checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """A coded concept: ``(value, scheme, meaning)``, e.g. SNOMED CT ``108369006`` Neoplasm."""

    value: str
    scheme: str
    meaning: str

    def slicer(self) -> str:
        """Slicer's terminology notation: ``scheme^value^meaning``."""
        return f"{self.scheme}^{self.value}^{self.meaning}"


@dataclass(frozen=True)
class Segment:
    value: int
    name: str
    description: str
    property_type: Code
    rgb: tuple[int, int, int]

    @property
    def colour(self) -> tuple[float, float, float]:
        """The colour as Slicer takes it (0..1 per channel)."""
        return (self.rgb[0] / 255.0, self.rgb[1] / 255.0, self.rgb[2] / 255.0)

    def terminology(self) -> str:
        """The segment's terminology entry in Slicer's notation (category, type, no modifier;
        anatomic region: brain), so Slicer's DICOM SEG export writes the same codes as the server."""
        return "~".join(["Segmentation category and type - DICOM master list", CATEGORY.slicer(),
                         self.property_type.slicer(), "^^", "Anatomic codes - DICOM master list",
                         BRAIN.slicer(), "^^"])


CATEGORY = Code("49755003", "SCT", "Morphologically Altered Structure")
BRAIN = Code("12738006", "SCT", "Brain")
SEGMENTS: tuple[Segment, ...] = (
    Segment(1, "NCR", "Necrotic and non-enhancing tumor core", Code("6574001", "SCT", "Necrosis"), (230, 40, 40)),
    Segment(2, "ED", "Peritumoral edema", Code("79654002", "SCT", "Edema"), (40, 200, 60)),
    Segment(3, "ET", "Enhancing tumor", Code("108369006", "SCT", "Neoplasm"), (250, 220, 30)),
)
#: Regions reported with volumes: whole tumor, tumor core (as the server's ``volumes_ml``).
REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


def segment_named(name: str) -> Segment:
    for segment in SEGMENTS:
        if segment.name == name:
            return segment
    raise KeyError(f"no segment named {name!r}; the segments are {', '.join(s.name for s in SEGMENTS)}")
