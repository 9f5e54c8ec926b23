"""The module's segment table agrees with the server's: values and names (lib/brats.py),
SNOMED CT codes and colours (lib/dicom/seg.py), so a segment means the same on both sides."""

from __future__ import annotations

from lib.brats import LABEL_NAMES
from lib.brats import REGIONS as SERVER_REGIONS
from lib.dicom.seg import MORPHOLOGICALLY_ALTERED
from lib.dicom.seg import SEGMENTS as SEG_SEGMENTS

from BrainTumorLabelLib.labels import BRAIN, CATEGORY, REGIONS, SEGMENTS


def test_values_names_codes_and_colours_agree_with_the_server():
    assert {s.value: s.name for s in SEGMENTS} == LABEL_NAMES
    assert REGIONS == SERVER_REGIONS
    server = {s.value: s for s in SEG_SEGMENTS}
    for segment in SEGMENTS:
        theirs = server[segment.value]
        assert (segment.name, segment.description, segment.rgb) == (theirs.label, theirs.description, theirs.rgb)
        assert (segment.property_type.value, segment.property_type.scheme) == \
            (theirs.property_type.value, theirs.property_type.scheme_designator)
    assert (CATEGORY.value, CATEGORY.scheme) == \
        (MORPHOLOGICALLY_ALTERED.value, MORPHOLOGICALLY_ALTERED.scheme_designator)
    assert BRAIN.value == "12738006"


def test_the_terminology_entry_names_category_type_and_region():
    entry = SEGMENTS[2].terminology().split("~")
    assert entry[1] == "SCT^49755003^Morphologically Altered Structure"
    assert entry[2] == "SCT^108369006^Neoplasm" and entry[5] == "SCT^12738006^Brain"
