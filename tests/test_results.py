"""Result files and documents can be traced and moved: no absolute machine path in them, and a
result that says it scored the shipped model names the shipped checkpoint's SHA-256."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lib.model.checkpoint import read_checkpoint_record
from lib.model.registry import BUNDLED_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
RESULTS = ("bench/results", "experiments/results")
#: a path on some machine: /data/..., /tmp/..., a home folder (not a URL's path: "host/data/" is
#: preceded by a word character)
_ABSOLUTE = re.compile(r"(?<![\w.])/(home|root|work|tmp|data|mnt|Users|check)/")
_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
_TEXT = (".md", ".json", ".py", ".sh", ".txt", ".csv")


def _tracked(*folders: str) -> list[Path]:
    listed = ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *folders]
    done = subprocess.run(listed, cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in done.stdout.split() if name.endswith(_TEXT)]


def _absolute_paths(text: str) -> list[str]:
    """The lines of ``text`` that name an absolute machine path."""
    return [line.strip() for line in text.splitlines() if _ABSOLUTE.search(line)]


def _records(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``value``, nested ones included."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _records(item)
    elif isinstance(value, list):
        for item in value:
            yield from _records(item)


def _wrong_checksums(result: Any, version: str, sha256: str) -> list[str]:
    """The SHA-256s a result gives for the shipped model (its version, or its file) that are not
    the shipped checkpoint's."""
    wrong = []
    for record in _records(result):
        claimed = record.get("sha256")
        names_it = record.get("version") == version or \
            str(record.get("checkpoint", "")).endswith("monailabel_app/model/brats_segresnet.pt")
        if names_it and claimed is not None and claimed != sha256:
            wrong.append(f"{record.get('version')}: {claimed}")
    return wrong


def test_the_checks_find_what_they_look_for():
    assert _absolute_paths("--cases /data/real --out x\nplain data/real") == ["--cases /data/real --out x"]
    assert not _absolute_paths("https://example.org/data/x, ../shared/real-cases, data/cv7/, ./tmp/x")
    assert _wrong_checksums({"provenance": {"model": {"version": "v1", "sha256": "b" * 64}}}, "v1", "a" * 64)
    assert _wrong_checksums([{"checkpoint": "monailabel_app/model/brats_segresnet.pt", "sha256": "b"}], "v1", "a")
    assert not _wrong_checksums({"model": {"version": "v0", "sha256": "b" * 64}}, "v1", "a" * 64)


def test_results_files_name_no_machine_path():
    named = {path.relative_to(REPO).as_posix(): lines for path in _tracked(*RESULTS)
             if (lines := _absolute_paths(path.read_text(encoding="utf-8")))}
    assert not named, json.dumps(named, indent=1)


def test_a_result_of_the_shipped_model_names_its_checkpoint():
    version, _ = read_checkpoint_record(BUNDLED_CHECKPOINT)
    sha256 = hashlib.sha256(BUNDLED_CHECKPOINT.read_bytes()).hexdigest()
    wrong = {}
    for path in _tracked(*RESULTS):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            found = _wrong_checksums(json.loads(text), version, sha256)
        else:  # a rendering that names the shipped version and a checksum must give the shipped one
            sums = set(_SHA256.findall(text))
            found = sorted(sums) if version in text and sums and sha256 not in sums else []
        if found:
            wrong[path.relative_to(REPO).as_posix()] = found
    assert not wrong, f"the shipped checkpoint {version} is {sha256}: {wrong}"


def test_benchmarks_experiments_and_documents_name_no_machine_path():
    pages = _tracked("bench", "experiments", "docs", "README.md", "CONTRIBUTING.md", "CHANGELOG.md",
                     "monailabel_app/README.md", "slicer_extension/README.md")
    named = {path.relative_to(REPO).as_posix(): lines for path in pages
             if (lines := _absolute_paths(path.read_text(encoding="utf-8")))}
    assert not named, json.dumps(named, indent=1)
