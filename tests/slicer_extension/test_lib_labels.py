"""The module's segment table agrees with the server's: values and names (lib/brats.py),
SNOMED CT codes and colours (lib/dicom/seg.py), so a segment means the same on both sides. The
server's tables are read on the server's Python (``_server_side``)."""

from __future__ import annotations

from BrainTumorLabelLib.labels import BRAIN, CATEGORY, REGIONS, SEGMENTS


def test_values_names_codes_and_colours_agree_with_the_server(server_tables):
    server = server_tables
    assert {str(s.value): s.name for s in SEGMENTS} == server["label_names"]
    assert {k: list(v) for k, v in REGIONS.items()} == server["regions"]
    theirs = {s["value"]: s for s in server["segments"]}
    for segment in SEGMENTS:
        other = theirs[segment.value]
        assert (segment.name, segment.description, list(segment.rgb)) == (other["label"], other["description"],
                                                                         other["rgb"])
        assert (segment.property_type.value, segment.property_type.scheme) == (other["code"], other["scheme"])
    assert [CATEGORY.value, CATEGORY.scheme] == server["category"]
    assert BRAIN.value == "12738006"


def test_the_terminology_entry_names_category_type_and_region():
    entry = SEGMENTS[2].terminology().split("~")
    assert entry[1] == "SCT^49755003^Morphologically Altered Structure"
    assert entry[2] == "SCT^108369006^Neoplasm" and entry[5] == "SCT^12738006^Brain"
