"""What the server's sequence rules read from a DICOM series, taken from Slicer's DICOM database.

:func:`series_attributes` reads one instance's attributes through a ``read(file, tag)``
function (``ctkDICOMDatabase.fileValue`` in Slicer, which returns a tag's value as text) and
returns them as DICOM JSON, what the server's ``/btl/sequences/identify`` takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: The attributes the server's classifier reads: tag -> (keyword, VR).
CLASSIFIER_TAGS: dict[str, tuple[str, str]] = {
    "0008103E": ("SeriesDescription", "LO"),
    "00181030": ("ProtocolName", "LO"),
    "00080008": ("ImageType", "CS"),
    "00180020": ("ScanningSequence", "CS"),
    "00180080": ("RepetitionTime", "DS"),
    "00180081": ("EchoTime", "DS"),
    "00180082": ("InversionTime", "DS"),
    "00180010": ("ContrastBolusAgent", "LO"),
    "00189087": ("DiffusionBValue", "FD"),
    "00200011": ("SeriesNumber", "IS"),
}


def series_attributes(series_uid: str, files: Sequence[str], read: Callable[[str, str], str]) -> dict[str, Any]:
    """``{"uid", "instances", "attributes"}`` of one series, from its first file. ``read(file,
    "GGGG,EEEE")`` returns the value as text (multiple values separated by backslashes), empty
    when absent."""
    attributes: dict[str, Any] = {}
    if files:
        for tag, (_keyword, vr) in CLASSIFIER_TAGS.items():
            text = (read(files[0], f"{tag[:4]},{tag[4:]}") or "").strip()
            if text:
                attributes[tag] = {"vr": vr, "Value": [v.strip() for v in text.split("\\")]}
    return {"uid": series_uid, "instances": len(files), "attributes": attributes}
