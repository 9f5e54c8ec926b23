"""Datastores: where studies and their labels live (a local folder; a PACS over DICOMweb).

:func:`open_datastore` makes the one a ``--studies`` address names, for the server's app and
for a job worker on another host alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from lib.options import as_flag

from .base import StudyDatastore


def open_datastore(studies: str, conf: Mapping[str, str]) -> StudyDatastore:
    """The datastore of ``studies``: a folder, or the MR studies of a DICOMweb PACS for an
    ``http(s)`` address (credentials from ``BTL_PACS_USERNAME``/``BTL_PACS_PASSWORD`` or
    ``conf["pacs_credentials_file"]``). ``conf``: ``import_case_labels`` (folder: a case's own
    ``-seg`` file counts as its final label), ``cache_dir`` (PACS: volumes, labels, outbox;
    default ``~/.cache/braintumorlabel/<pacs>``), ``pacs_study_filter`` (PACS: JSON of QIDO-RS
    study keys that narrow the studies served). Raises ValueError for a bad filter."""
    if not studies.startswith(("http://", "https://")):
        from .study_folder import StudyFolderDatastore

        return StudyFolderDatastore(studies, import_case_labels=as_flag(conf.get("import_case_labels", False)))
    from lib.pacs.client import PacsClient, PacsConfig

    from .dicomweb import DicomWebStudyDatastore

    pacs = PacsConfig.from_environment(studies, conf.get("pacs_credentials_file"))
    cache = conf.get("cache_dir") or Path.home() / ".cache" / "braintumorlabel" / re.sub(r"[^A-Za-z0-9.]+", "_",
                                                                                        pacs.url)
    return DicomWebStudyDatastore(PacsClient(pacs), cache, study_filter=study_filter(conf))


def study_filter(conf: Mapping[str, str]) -> dict[str, str]:
    """``pacs_study_filter`` of ``conf``: QIDO-RS keys narrowing the studies, e.g.
    ``{"StudyDate": "20260101-"}``; ValueError when it is not a JSON object."""
    text = conf.get("pacs_study_filter", "")
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"pacs_study_filter is not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"pacs_study_filter must be a JSON object of QIDO-RS keys, got {text!r}")
    return {str(k): str(v) for k, v in value.items()}
