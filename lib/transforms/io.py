"""Find a case's files and load them as SimpleITK images (with input validation).

A case is either

* a folder in BraTS naming: ``<case>-t1n.nii.gz``, ``-t1c``, ``-t2w``, ``-t2f`` and an
  optional ``<case>-seg.nii.gz`` (any extension in :data:`IMAGE_EXTENSIONS`), or
* a single 4D file with 4 channels in the order t1n, t1c, t2w, t2f (last axis), or
* an explicit mapping ``{"t1n": path, "t1c": path, "t2w": path, "t2f": path}`` or a
  list of 4 paths in that order.

Every image is checked: readable, 3D, non-degenerate, finite. A label must lie on
the t1c grid and hold only values {0, 1, 2, 3}. Any problem raises a subclass of
:class:`lib.errors.InputError` naming the case and the file.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from monai.transforms import MapTransform

from lib.atomic import atomic_path
from lib.brats import REFERENCE_SEQUENCE, SEQUENCES
from lib.errors import (
    ImageTooLargeError,
    InputError,
    InvalidGeometryError,
    InvalidLabelError,
    MissingSequenceError,
    NonFiniteVoxelsError,
    UnreadableImageError,
)

from ._common import CaseGeometry, Grid

#: The most voxels (all channels together) an image may declare: 4 sequences of 400 x 400 x 400.
#: BraTS studies have 4 x 240 x 240 x 155 (36 M); the limit stops a small compressed file from
#: claiming gigabytes of memory.
MAX_VOXELS = 4 * 400 ** 3
#: The most memory an image's voxels may take once decoded (voxels x bytes per voxel of its type):
#: a BraTS study as float64 takes 286 MB; the limit stops a 2 MB file declaring 400^3 x 4 float64
#: (2 GB) from being decoded at all. The server's ``BTL_MAX_DECODED_MB`` can lower or raise it.
MAX_DECODED_BYTES = 512 * 2**20
#: File extensions accepted for images (all readable by SimpleITK), longest first.
IMAGE_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr")

#: Suffix of the label file in BraTS naming.
LABEL_SUFFIX = "seg"

#: Label values allowed in a segmentation.
LABEL_VALUES: frozenset[int] = frozenset({0, 1, 2, 3})


def _strip_extension(name: str) -> str | None:
    low = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return None


@dataclass(frozen=True)
class CaseFiles:
    """Where a case's images are. Either ``sequences`` (one 3D file per sequence, keyed by
    :data:`lib.brats.SEQUENCES`) or ``multichannel`` (one 4D file) is set; ``label`` is optional."""

    case_id: str
    sequences: Mapping[str, Path] | None = None
    multichannel: Path | None = None
    label: Path | None = None

    def path_of(self, sequence: str) -> Path:
        """The file a sequence comes from (the 4D file for a multichannel case)."""
        if self.sequences is not None:
            return self.sequences[sequence]
        assert self.multichannel is not None
        return self.multichannel


def find_case_files(source: str | Path | Mapping[str, Any] | Sequence[Any],
                    case_id: str | None = None, label: str | Path | None = None) -> CaseFiles:
    """Locate the files of one case.

    ``source`` is a folder in BraTS naming, a single 4-channel file, a mapping
    sequence -> path, or a list of 4 paths in :data:`SEQUENCES` order. ``label``
    overrides the ``-seg`` file found in a folder. Raises :class:`MissingSequenceError`
    when a sequence (or the given label) is not there, :class:`InputError` when a
    folder has two candidate files for one sequence.
    """
    label_path = Path(label) if label is not None else None
    if isinstance(source, Mapping) or (isinstance(source, Sequence) and not isinstance(source, str)):
        if isinstance(source, Mapping):
            mapping = {str(k): v for k, v in source.items()}
        else:
            if len(source) != len(SEQUENCES):
                raise MissingSequenceError(
                    f"expected {len(SEQUENCES)} files ({', '.join(SEQUENCES)}), got {len(source)}", case_id)
            mapping = dict(zip(SEQUENCES, source, strict=True))
        cid = case_id
        seqs: dict[str, Path] = {}
        for seq in SEQUENCES:
            if seq not in mapping or mapping[seq] is None:
                raise MissingSequenceError(f"sequence '{seq}' is missing", cid)
            p = Path(mapping[seq])
            if cid is None:
                stem = _strip_extension(p.name) or p.name
                cid = stem[: -len(seq) - 1] if stem.endswith("-" + seq) else stem
            if not p.is_file():
                raise MissingSequenceError(f"sequence '{seq}' file does not exist", cid, p)
            seqs[seq] = p
        if label_path is not None and not label_path.is_file():
            raise MissingSequenceError("label file does not exist", cid, label_path)
        return CaseFiles(cid or "unknown", sequences=seqs, label=label_path)

    path = Path(source)
    if path.is_file():
        cid = case_id or _strip_extension(path.name) or path.stem
        if label_path is not None and not label_path.is_file():
            raise MissingSequenceError("label file does not exist", cid, label_path)
        return CaseFiles(cid, multichannel=path, label=label_path)
    if not path.is_dir():
        raise MissingSequenceError("case path does not exist", case_id or path.name, path)

    cid = case_id or path.name
    found: dict[str, list[Path]] = {s: [] for s in (*SEQUENCES, LABEL_SUFFIX)}
    for f in sorted(path.iterdir()):
        file_stem = _strip_extension(f.name)
        if file_stem is None or not f.is_file():
            continue
        for key in found:
            if file_stem.endswith("-" + key) or file_stem == key:
                found[key].append(f)
    seqs = {}
    for seq in SEQUENCES:
        cands = found[seq]
        if not cands:
            raise MissingSequenceError(f"sequence '{seq}' is missing (expected '<case>-{seq}.nii.gz')",
                                       cid, path)
        if len(cands) > 1:
            pref = [c for c in cands if c.name.startswith(cid + "-")]
            if len(pref) != 1:
                raise InputError(f"several files for sequence '{seq}': {[c.name for c in cands]}", cid, path)
            cands = pref
        seqs[seq] = cands[0]
    if label_path is None and found[LABEL_SUFFIX]:
        cands = found[LABEL_SUFFIX]
        pref = [c for c in cands if c.name.startswith(cid + "-")] if len(cands) > 1 else cands
        if len(pref) != 1:
            raise InputError(f"several label files: {[c.name for c in cands]}", cid, path)
        label_path = pref[0]
    elif label_path is not None and not label_path.is_file():
        raise MissingSequenceError("label file does not exist", cid, label_path)
    return CaseFiles(cid, sequences=seqs, label=label_path)


def _payload_size(path: Path) -> int:
    """Uncompressed byte count of a file; a .gz stream is decompressed fully (in chunks), which
    raises on truncation or CRC errors."""
    if path.name.lower().endswith(".gz"):
        total = 0
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                total += len(chunk)
        return total
    return path.stat().st_size


def _check_nifti(path: Path, case_id: str | None) -> None:
    """NIfTI-specific checks ITK does not do: ITK may read a truncated .nii.gz silently
    (zero-filled) and turns NaN/Inf voxels into 0 on read. For float data the voxels are
    read with nibabel (raises on truncation) and checked for finiteness; for integer data
    the (decompressed) payload size is compared with what the header announces."""
    low = path.name.lower()
    if not (low.endswith(".nii") or low.endswith(".nii.gz")):
        return
    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise UnreadableImageError(f"not a NIfTI image ({type(img).__name__})", case_id, path)
        header = img.header
        with nib.openers.ImageOpener(str(path)) as raw:  # as written: nibabel's load turns a 0 spacing into 1
            written = type(header).from_fileobj(raw, check=False)
        spacing = [float(v) for v in written["pixdim"][1:4]]
        if not all(np.isfinite(s) and s > 0 for s in spacing):
            raise InvalidGeometryError(f"image has invalid voxel spacing {spacing} (pixdim)", case_id, path)
        if np.issubdtype(header.get_data_dtype(), np.floating):
            arr = np.asanyarray(img.dataobj)
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            if bad:
                raise NonFiniteVoxelsError(f"image has {bad} NaN or infinite voxels", case_id, path)
            return
        expected = int(header["vox_offset"]) + int(np.prod(header.get_data_shape(), dtype=np.int64)) \
            * int(header.get_data_dtype().itemsize)
        actual = _payload_size(path)
    except InputError:
        raise
    except Exception as exc:
        raise UnreadableImageError(f"cannot read image ({type(exc).__name__}: {str(exc)[:200]})",
                                   case_id, path) from None
    if actual < expected:
        raise UnreadableImageError(f"file is truncated ({actual} of {expected} bytes)", case_id, path)


def check_declared_size(path: str | Path, case_id: str | None = None, max_voxels: int | None = None,
                        max_decoded_bytes: int | None = None) -> None:
    """Read only the header: :class:`ImageTooLargeError` when it declares more than ``max_voxels``
    voxels (all channels; default :data:`MAX_VOXELS`) or voxels that would take more than
    ``max_decoded_bytes`` decoded (default :data:`MAX_DECODED_BYTES`), :class:`UnreadableImageError`
    when it cannot be read or holds complex values."""
    reader = _header(Path(path), case_id)
    if reader.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64) or \
            "complex" in sitk.GetPixelIDValueAsString(reader.GetPixelID()).lower():
        raise UnreadableImageError("complex-valued images are not MRI magnitudes; send magnitude images",
                                   case_id, path)
    voxels = int(np.prod([int(s) for s in reader.GetSize()], dtype=np.int64)) * reader.GetNumberOfComponents()
    voxel_limit = MAX_VOXELS if max_voxels is None else max_voxels
    if voxels > voxel_limit:
        raise ImageTooLargeError(f"image declares {voxels:,} voxels (size {reader.GetSize()}); the limit is "
                                 f"{voxel_limit:,}", case_id, path)
    decoded = voxels * _bytes_per_component(reader.GetPixelID())
    byte_limit = MAX_DECODED_BYTES if max_decoded_bytes is None else max_decoded_bytes
    if decoded > byte_limit:
        raise ImageTooLargeError(f"image declares {decoded / 2**20:,.0f} MB of voxels once decoded (size "
                                 f"{reader.GetSize()}, {sitk.GetPixelIDValueAsString(reader.GetPixelID())}); the "
                                 f"limit is {byte_limit / 2**20:,.0f} MB", case_id, path)


def read_header(path: str | Path, case_id: str | None = None) -> Grid | None:
    """The 3D grid (size, spacing, origin, direction) an image file declares, from its header
    alone, or None when the header is not 3D (a 4D header with a last axis of 1 counts as 3D);
    :class:`UnreadableImageError` when it cannot be read."""
    reader = _header(Path(path), case_id)
    size, dim = reader.GetSize(), reader.GetDimension()
    if dim not in (3, 4) or (dim == 4 and size[3] != 1) or reader.GetNumberOfComponents() != 1:
        return None
    direction = reader.GetDirection()
    return Grid(tuple(int(v) for v in size[:3]), tuple(float(v) for v in reader.GetSpacing()[:3]),
                tuple(float(v) for v in reader.GetOrigin()[:3]),
                tuple(float(direction[r * dim + c]) for r in range(3) for c in range(3)))


def _header(path: Path, case_id: str | None) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except Exception as exc:
        first = str(exc).strip().splitlines()
        msg = next((ln for ln in first if "rror" in ln or "ould not" in ln), first[0] if first else "")
        raise UnreadableImageError(f"cannot read image ({msg.strip()[:200]})", case_id, path) from None
    return reader


def _bytes_per_component(pixel_id: int) -> int:
    """Bytes of one voxel component of a SimpleITK pixel type ("64-bit float" -> 8)."""
    bits = re.search(r"(\d+)-bit", sitk.GetPixelIDValueAsString(pixel_id))
    return int(bits[1]) // 8 if bits else 8


def read_image(path: str | Path, case_id: str | None = None) -> sitk.Image:
    """Read any SimpleITK-readable image, pixel data included. Raises
    :class:`UnreadableImageError` (corrupt, truncated, unknown format, complex-valued) or
    :class:`ImageTooLargeError` (checked from the header first) naming case and file.
    NIfTI files are also checked for truncation and NaN/Inf voxels (see :func:`_check_nifti`)."""
    p = Path(path)
    if not p.is_file():
        raise UnreadableImageError("no such file", case_id, p)
    check_declared_size(p, case_id)
    _check_nifti(p, case_id)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(p))
        img = reader.Execute()
    except Exception as exc:  # SimpleITK raises RuntimeError with a long ITK trace
        first = str(exc).strip().splitlines()
        msg = next((ln for ln in first if "rror" in ln or "ould not" in ln), first[0] if first else "")
        raise UnreadableImageError(f"cannot read image ({msg.strip()[:200]})", case_id, p) from None
    return img


def check_3d(image: sitk.Image, case_id: str | None, path: str | Path | None, what: str = "image") -> sitk.Image:
    """Ensure a scalar, non-degenerate 3D image; a trailing singleton 4th axis is dropped.
    Raises :class:`InvalidGeometryError` for 2D, 4D (more than one volume), vector images
    and for sizes < 2 voxels or non-positive spacing."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidGeometryError(
            f"{what} has {image.GetNumberOfComponentsPerPixel()} components per voxel, a 3D scalar image "
            "is expected", case_id, path)
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
        dim = 3
    if dim != 3:
        raise InvalidGeometryError(f"{what} is {dim}D (size {image.GetSize()}), a 3D image is expected",
                                   case_id, path)
    if min(image.GetSize()) < 2:
        raise InvalidGeometryError(f"{what} has a degenerate size {image.GetSize()}", case_id, path)
    if min(image.GetSpacing()) <= 0 or not np.all(np.isfinite(image.GetSpacing())):
        raise InvalidGeometryError(f"{what} has invalid spacing {image.GetSpacing()}", case_id, path)
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    if not np.isfinite(d).all() or abs(abs(np.linalg.det(d)) - 1) > 1e-3:
        raise InvalidGeometryError(f"{what} has a non-orthonormal direction matrix", case_id, path)
    return image


def check_finite(image: sitk.Image, case_id: str | None, path: str | Path | None, what: str = "image") -> None:
    """Raise :class:`NonFiniteVoxelsError` when any voxel is NaN or infinite."""
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        arr = sitk.GetArrayViewFromImage(image)
        if not np.isfinite(arr).all():
            n = int(arr.size - np.isfinite(arr).sum())
            raise NonFiniteVoxelsError(f"{what} has {n} NaN or infinite voxels", case_id, path)


#: The fewest voxels along any axis of a sequence (a 1 x 1 x 1 "study" is refused).
MIN_SEQUENCE_VOXELS = 8


def check_sequence(image: sitk.Image, case_id: str | None, path: str | Path | None, sequence: str) -> sitk.Image:
    """One MRI sequence of a study, as Float32: 3D (:func:`check_3d`), at least
    :data:`MIN_SEQUENCE_VOXELS` along every axis, finite, not blank. Raises typed
    :class:`InputError` subclasses naming the sequence."""
    image = check_3d(image, case_id, path, sequence)
    if min(image.GetSize()) < MIN_SEQUENCE_VOXELS:
        raise InvalidGeometryError(f"{sequence} is {image.GetSize()} voxels; a brain needs at least "
                                   f"{MIN_SEQUENCE_VOXELS} along every axis", case_id, path)
    image = sitk.Cast(image, sitk.sitkFloat32)
    check_finite(image, case_id, path, sequence)
    values = sitk.GetArrayViewFromImage(image)
    if float(values.max()) == float(values.min()):
        raise InputError(f"{sequence} is blank (every voxel is {float(values.min()):g})", case_id, path)
    return image


def split_channels(image: sitk.Image, case_id: str | None, path: str | Path | None) -> dict[str, sitk.Image]:
    """Split a 4-channel image (4D with last size 4, or a 3D 4-component vector image)
    into 3D images keyed by :data:`SEQUENCES`. Raises :class:`InvalidGeometryError` otherwise."""
    if image.GetDimension() == 3 and image.GetNumberOfComponentsPerPixel() == len(SEQUENCES):
        return {s: sitk.VectorIndexSelectionCast(image, i) for i, s in enumerate(SEQUENCES)}
    if image.GetDimension() == 4 and image.GetNumberOfComponentsPerPixel() == 1 \
            and image.GetSize()[3] == len(SEQUENCES):
        return {s: image[:, :, :, i] for i, s in enumerate(SEQUENCES)}
    raise InvalidGeometryError(
        f"a single-file case must be 4D with {len(SEQUENCES)} channels ({', '.join(SEQUENCES)}); got "
        f"{image.GetDimension()}D size {image.GetSize()} with {image.GetNumberOfComponentsPerPixel()} "
        "component(s)", case_id, path)


def check_label(label: sitk.Image, reference: Grid, case_id: str | None, path: str | Path | None) -> sitk.Image:
    """Validate a label map: 3D, on the ``reference`` (t1c) grid, integer values in {0,1,2,3}.
    A label on the same voxels in another index order (axes reversed or permuted, as 3D
    Slicer writes a file whose direction matrix has a negative determinant) is put back into
    the reference order, exactly. Returns it cast to UInt8 on the reference grid. Raises
    :class:`InvalidLabelError` (or the 3D/finite errors)."""
    label = check_3d(label, case_id, path, "label")
    check_finite(label, case_id, path, "label")
    if not Grid.of(label).matches(reference) and Grid.of(label).same_voxels(reference):
        label = sitk.Resample(label, reference.reference_image(label.GetPixelID()), sitk.Transform(),
                              sitk.sitkNearestNeighbor, 0)
    if not Grid.of(label).matches(reference):
        raise InvalidLabelError(
            f"label grid (size {label.GetSize()}, spacing {tuple(round(s, 4) for s in label.GetSpacing())}, "
            f"origin {tuple(round(o, 3) for o in label.GetOrigin())}) differs from the t1c grid "
            f"(size {reference.size}, spacing {tuple(round(s, 4) for s in reference.spacing)}, "
            f"origin {tuple(round(o, 3) for o in reference.origin)})", case_id, path)
    arr = sitk.GetArrayViewFromImage(label)
    values = np.unique(arr)
    bad = [v for v in values.tolist() if v not in LABEL_VALUES]
    if bad:
        raise InvalidLabelError(f"label has values outside {{0, 1, 2, 3}}: {bad[:10]}", case_id, path)
    return sitk.Cast(label, sitk.sitkUInt8)


def read_label(path: str | Path, reference: Grid, case_id: str | None, what: str = "submitted label") -> sitk.Image:
    """Read and validate a label file for a study whose t1c grid is ``reference``
    (:func:`check_label`). Its header is checked first: a label declaring another grid is
    refused before any voxel is decoded, so its memory is never taken. Raises
    :class:`InvalidLabelError` naming ``what`` (never the server's path of the file)."""
    try:
        declared = read_header(path, case_id)
        if declared is not None and not declared.matches(reference) and not declared.same_voxels(reference):
            raise InvalidLabelError(f"label grid (size {declared.size}) differs from the t1c grid (size "
                                    f"{reference.size}, spacing {tuple(round(v, 4) for v in reference.spacing)})",
                                    case_id, what)
        label = read_image(path, case_id)
    except InvalidLabelError:
        raise
    except InputError as exc:
        raise InvalidLabelError(f"label cannot be read: {exc.problem}", case_id, what) from None
    return check_label(label, reference, case_id, what)


def load_case(files: CaseFiles, load_label: bool = True) -> tuple[dict[str, sitk.Image], sitk.Image | None]:
    """Read and validate every sequence (as Float32) and, if ``load_label`` and present, the label."""
    cid = files.case_id
    images: dict[str, sitk.Image] = {}
    if files.multichannel is not None:
        raw = read_image(files.multichannel, cid)
        for seq, img in split_channels(raw, cid, files.multichannel).items():
            images[seq] = img
    else:
        assert files.sequences is not None
        for seq in SEQUENCES:
            images[seq] = read_image(files.sequences[seq], cid)
    for seq in SEQUENCES:
        images[seq] = check_sequence(images[seq], cid, files.path_of(seq), seq)
    label = None
    if load_label and files.label is not None:
        label = check_label(read_image(files.label, cid), Grid.of(images[REFERENCE_SEQUENCE]), cid, files.label)
    return images, label


class LoadCased(MapTransform):
    """Load a case as SimpleITK images.

    Reads ``data[image_key]`` (folder, 4-channel file, mapping sequence->path or list of 4
    paths), optional ``data[label_key]`` (path) and optional ``data["case_id"]``.

    Writes:
      * ``data[seq]`` for seq in :data:`SEQUENCES`: 3D ``sitk.Image`` Float32 (as read);
      * ``data[label_key]``: 3D ``sitk.Image`` UInt8 on the t1c grid, when a label is loaded
        (``label="required"`` raises :class:`MissingSequenceError` without one, ``"never"``
        ignores it, ``"auto"`` loads it if found);
      * ``data["case_id"]`` (str), ``data["source_files"]`` (dict name -> str path, used in
        error messages downstream), ``data["geometry"]`` (:class:`CaseGeometry` with the t1c
        grid as read).
    """

    def __init__(self, image_key: str = "image", label_key: str = "label",
                 label: Literal["auto", "required", "never"] = "auto") -> None:
        super().__init__([image_key])
        self.image_key = image_key
        self.label_key = label_key
        self.label_mode = label

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        label_in = d.get(self.label_key) if self.label_mode != "never" else None
        if label_in is not None and not isinstance(label_in, (str, os.PathLike)):
            raise InputError(f"'{self.label_key}' must be a file path, got {type(label_in).__name__}",
                             d.get("case_id"))
        files = find_case_files(d[self.image_key], d.get("case_id"), None if label_in is None else Path(label_in))
        if self.label_mode == "required" and files.label is None:
            raise MissingSequenceError("label ('-seg') is missing", files.case_id,
                                       files.multichannel or d[self.image_key])
        images, label = load_case(files, load_label=self.label_mode != "never")
        d.update(images)
        d.pop(self.label_key, None)
        if label is not None:
            d[self.label_key] = label
        d["case_id"] = files.case_id
        d["source_files"] = {s: str(files.path_of(s)) for s in SEQUENCES}
        if files.label is not None and label is not None:
            d["source_files"][self.label_key] = str(files.label)
        d["geometry"] = CaseGeometry(original=Grid.of(images[REFERENCE_SEQUENCE]))
        return d


def write_image_atomic(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` atomically: to a temporary file in the same folder, then
    ``os.replace``. On failure nothing is left at ``path`` (an older file stays untouched)."""
    path = Path(path)
    ext = next((e for e in IMAGE_EXTENSIONS if path.name.lower().endswith(e)), path.suffix)
    with atomic_path(path, ext) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return path
