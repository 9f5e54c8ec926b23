"""Generated hostile requests for the server (used by tests/test_fuzz.py and bench/fuzz_and_faults.py).

Each request is built from a seeded random generator: ids and tags with null bytes, path
traversal, unicode, 300-character strings; malformed or wrongly typed JSON; uploads that are
random bytes, truncated gzip, tiny, complex-valued, blank, declaring billions of voxels or
gigabytes once decoded; and the payloads of the 2026-12 security review: a server path named as
the image with ``"uploaded": true``, MONAI Label's WSI inference, a session tar whose members
climb out of the session folder (:func:`escaping_tar`).
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

MODEL = "brats_segresnet"
STRINGS = ["", "..", "../../etc/passwd", "/etc", "a\x00b", "x" * 300, "é漢字", "final v2", "%2e%2e%2f", "-1",
           "1e309", "null", "' OR 1=1 --", "<script>", "CON", ".hidden", "a/b", "a\\b", " "]


@dataclass
class Attempt:
    method: str
    path: str
    fields: dict[str, str] | None = None
    files: dict[str, bytes] | None = None
    body: bytes | None = None
    content_type: str | None = None
    what: str = ""
    extras: dict[str, str] = field(default_factory=dict)


def _nifti(size: tuple[int, int, int, int], spacing_mm: float, data: bytes, datatype: int = 16,
           bitpix: int = 32) -> bytes:
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 4, *size, 1, 1, 1)
    struct.pack_into("<hh", header, 70, datatype, bitpix)
    struct.pack_into("<8f", header, 76, 1, spacing_mm, spacing_mm, spacing_mm, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352)
    header[344:348] = b"n+1\0"
    return gzip.compress(bytes(header) + b"\0" * 4 + data)


def bad_uploads(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    noise = rng.random(20 ** 3 * 4).astype(np.float32).tobytes()
    return [
        ("random bytes", rng.bytes(2000)),
        ("empty", b""),
        ("truncated gzip", _nifti((20, 20, 20, 4), 1.0, noise)[:3000]),
        ("one voxel", _nifti((1, 1, 1, 4), 1.0, b"\0" * 16)),
        ("blank", _nifti((20, 20, 20, 4), 1.0, b"\0" * len(noise))),
        ("zero spacing", _nifti((20, 20, 20, 4), 0.0, noise)),
        ("nan spacing", _nifti((20, 20, 20, 4), float("nan"), noise)),
        ("complex", _nifti((20, 20, 20, 4), 1.0, noise * 2, datatype=32, bitpix=64)),
        ("billions of voxels", _nifti((2000, 2000, 2000, 4), 1.0, noise)),
        ("2 GB of float64 once decoded", _nifti((400, 400, 400, 4), 1.0, noise, datatype=64, bitpix=64)),
        ("634^3 float64 label", _nifti((634, 634, 634, 1), 1.0, noise, datatype=64, bitpix=64)),
        ("three channels", _nifti((20, 20, 20, 3), 1.0, noise[: 20 ** 3 * 3 * 4])),
        ("not gzip but .nii.gz", b"\x1f\x8b" + rng.bytes(500)),
    ]


#: MONAI Label routes the product does not offer (security review, 2026-12): each is a 404.
NOT_SERVED = [
    ("PUT", "/session/"), ("GET", "/session/abc"), ("DELETE", "/session/abc"),
    ("POST", "/infer/wsi/segmentation"), ("POST", "/infer/wsi_v2/segmentation"),
    ("POST", "/scoring/epistemic"), ("GET", "/scoring/"), ("POST", "/batch/infer/segmentation"),
    ("GET", "/batch/infer"), ("GET", "/proxy/dicom/wado/x"), ("GET", "/ohif/index.html"), ("POST", "/reload"),
    ("GET", "/logs/"), ("GET", "/logs/gpu"), ("PUT", "/datastore/updatelabelinfo"), ("PUT", "/datastore/image/info"),
    ("DELETE", "/datastore/image"), ("GET", "/model/segmentation"), ("GET", "/model/info/segmentation"),
    ("PUT", "/model/segmentation"), ("GET", "/static/app.css"), ("GET", "/static/../datastore/dataset"),
    ("OPTIONS", "/datastore/dataset"), ("GET", "/nowhere"), ("GET", "//datastore/image"), ("POST", "/"),
]


#: Where the members of :func:`escaping_tar` would land if a server extracted it unfiltered.
ESCAPED = "/tmp/btl-fuzz-escaped"


def escaping_tar() -> bytes:
    """A tar whose members have an absolute name, a ``..`` name and a link out of the folder."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in (f"{ESCAPED}-absolute", f"../../../../../..{ESCAPED}-dotdot"):
            data = b"written outside the session folder"
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    return out.getvalue()


def attempts(seed: int, count: int, study: str) -> Iterator[Attempt]:
    """``count`` hostile requests; ``study`` is a real study id (bad input about a real study
    matters most: it is what must stay unchanged)."""
    rng = np.random.default_rng(seed)
    uploads = bad_uploads(rng)

    def text() -> str:
        return str(rng.choice(STRINGS)) if rng.random() < 0.7 else rng.bytes(int(rng.integers(1, 40))).decode(
            "latin-1")

    def q(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def junk_json() -> str:
        """Never acceptable: malformed, not an object, or asking inference to write a 'final' label."""
        return str(rng.choice(['{bad', "[1, 2", "null", '"a string"', "1e999", "{" * 1000,
                               json.dumps({"label_tag": "final"}), json.dumps([{"user": text()}])]))

    def bad_options() -> str:
        return str(rng.choice([junk_json(), '{"max_epochs": "abc"}', json.dumps({"batch_size": 0}),
                               json.dumps({"roi_size": -64}), json.dumps({"max_epochs": 1e12}),
                               json.dumps({"learning_rate": "NaN"}), json.dumps({"val_fraction": 2})]))

    makers = [
        lambda: Attempt("POST", f"/infer/{MODEL}?image={q(text())}&output=json", what="infer unknown id"),
        lambda: Attempt("POST", f"/infer/{MODEL}?image={q(study)}&output=json", fields={"params": junk_json()},
                        what="infer bad params"),
        lambda: Attempt("POST", f"/infer/{q(text())}?image={q(study)}&output=json", what="infer unknown model"),
        lambda: Attempt("POST", f"/infer/{MODEL}?output=json",
                        files={"file": uploads[int(rng.integers(len(uploads)))][1]}, what="infer bad upload"),
        lambda: Attempt("PUT", f"/datastore/label?image={q(study)}&tag={q(text())}",
                        files={"label": uploads[int(rng.integers(len(uploads)))][1]}, what="label bad tag or file"),
        lambda: Attempt("PUT", f"/datastore/label?image={q(study)}&tag=final",
                        files={"label": uploads[int(rng.integers(len(uploads)))][1]}, fields={"params": junk_json()},
                        what="label bad file"),
        lambda: Attempt("PUT", f"/datastore/label?image={q(text())}&tag=final", files={"label": rng.bytes(100)},
                        what="label unknown study"),
        lambda: Attempt("PUT", f"/datastore/image?image={q(text())}",
                        files={"file": uploads[int(rng.integers(len(uploads)))][1]}, what="upload bad study"),
        lambda: Attempt("PUT", f"/datastore/label/info?label={q(study)}&tag={q(text())}",
                        fields={"params": junk_json()}, what="amend bad"),
        lambda: Attempt("POST", f"/infer/{MODEL}?image={q(study)}&output=json", fields={"params": "x" * 300_000},
                        what="infer huge params"),
        lambda: Attempt("DELETE", f"/datastore/label?id={q(text())}&tag={q(text())}", what="remove unknown label"),
        lambda: Attempt("DELETE", f"/datastore/?id={q(text())}", what="remove unknown study"),
        lambda: Attempt("GET", f"/datastore/image?image={q(text())}", what="download unknown"),
        lambda: Attempt("GET", f"/datastore/label?label={q(study)}&tag={q(text())}", what="download bad tag"),
        lambda: Attempt("GET", f"/btl/studies/{q(text())}/sequences/{q(text())}", what="sequence bad"),
        lambda: Attempt("GET", f"/btl/studies/{q(study)}/labels/{q(text())}/{int(rng.integers(-5, 10**9))}",
                        what="label version bad"),
        lambda: Attempt("POST", f"/train/{MODEL}", body=bad_options().encode(), content_type="application/json",
                        what="train bad options"),
        lambda: Attempt("POST", f"/activelearning/{q(text())}", body=b"{}", content_type="application/json",
                        what="unknown strategy"),
        lambda: Attempt("POST", "/btl/sequences/identify", body=junk_json().encode(), content_type="application/json",
                        what="identify bad"),
        lambda: Attempt("GET", f"/datastore/image/info?image={q(text())}", what="info unknown"),
        lambda: Attempt("POST", f"/infer/{MODEL}?image={q(str(rng.choice(['/etc', '/tmp', '/', '/proc/self'])))}"
                        "&output=json", fields={"params": json.dumps({"uploaded": True})}, what="infer a server path"),
        lambda: Attempt("POST", f"/infer/wsi/{MODEL}?image=%2Fetc", body=json.dumps({"params": {"uploaded": True}})
                        .encode(), content_type="application/json", what="wsi inference"),
        lambda: Attempt("PUT", "/session/?uncompress=true", files={"files": escaping_tar()}, what="session tar"),
        lambda: Attempt("GET", f"/btl/search/similar?study={q(text())}&k={int(rng.integers(-5, 10**6))}"
                        f"&by={q(text())}&{q(text())}>={q(text())}", what="similar bad"),
        lambda: Attempt("GET", f"/btl/search?q={q(text())}&mode={q(text())}&{q(text())}<{q(text())}",
                        what="text search bad"),
    ]
    for _ in range(count):
        yield makers[int(rng.integers(len(makers)))]()
