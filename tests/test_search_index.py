"""The search index on its own files (lib/search/index.py): a corrupt or missing file is rebuilt,
never an error; a study replaced or deleted leaves nothing behind; filters and searches; the
service refills a set-aside index from the datastore (lib/search/service.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lib.datastore.base import StudyRef
from lib.datastore.study_folder import StudyFolderDatastore
from lib.errors import InputError
from lib.model import load_checkpoint
from lib.report.store import ReportStore
from lib.search.descriptors import OCCUPANCY_CELLS, TumorDescriptors
from lib.search.features import LabelRef, StudyFeatures
from lib.search.filters import parse_filters
from lib.search.index import SearchIndex
from lib.search.service import SearchService

from _cases import make_studies, truth_path
from _server import REPO

CELLS = int(np.prod(OCCUPANCY_CELLS))


def features(study: str, wt_ml: float, hemisphere: str, seed: int, patient: str | None = None) -> StudyFeatures:
    rng = np.random.default_rng(seed)
    occupancy = np.zeros(CELLS)
    occupancy[seed % CELLS] = 1.0
    d = TumorDescriptors({"WT": wt_ml, "TC": wt_ml / 2, "ET": wt_ml / 4, "NCR": wt_ml / 4, "ED": wt_ml / 2},
                         {"WT": wt_ml / 14}, 1400.0, 0.5, 0.5, 1, 1, hemisphere, False, tuple(occupancy))
    image = rng.normal(size=12).astype(np.float32)
    return StudyFeatures(StudyRef(study, patient_id=patient), LabelRef("final", 1), "m1", d,
                         image / np.linalg.norm(image))


@pytest.fixture
def index(tmp_path: Path) -> SearchIndex:
    built = SearchIndex(tmp_path / "index", image_model="m1")
    for i, (wt, side) in enumerate([(10.0, "left"), (60.0, "right"), (80.0, "right"), (5.0, "left")]):
        built.put(features(f"S{i}", wt, side, i, patient="P0" if i < 2 else f"P{i}"))
    built.save()
    return built


def test_the_nearest_study_by_image_is_its_own_vector_and_filters_narrow_it(index):
    row = index.row_of("S2")
    assert row is not None
    query = index.vector("image", row)
    assert query is not None
    found = index.nearest("image", query, 3, None, set())
    assert found[0].row == row and found[0].score == pytest.approx(1.0, abs=1e-5)
    allowed = index.matching(parse_filters("wt_ml>=50&hemisphere=right", frozenset()))
    assert {index.rows([n.row])[n.row]["study"] for n in index.nearest("image", query, 3, allowed, {row})} == {"S1"}


def test_a_replaced_study_keeps_one_row_and_a_deleted_one_leaves_every_index(index):
    index.put(features("S1", 61.0, "right", 9))
    assert index.count() == 4 and index.count("image") == 4 and index.count("tumor") == 4
    assert index.delete("S1") and not index.delete("S1")
    assert index.count("image") == 3 and index.row_of("S1") is None


def test_a_corrupt_sqlite_file_is_set_aside_and_the_index_starts_again(index, tmp_path):
    index.close()
    (tmp_path / "index" / "index.sqlite").write_bytes(b"this is not a database" * 100)
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (tmp_path / "index" / extra).unlink(missing_ok=True)
    again = SearchIndex(tmp_path / "index", image_model="m1")
    assert again.recovered and again.count() == 0 and again.count("image") == 0
    assert list((tmp_path / "index").glob("index.sqlite.corrupt-*"))
    again.put(features("S9", 10.0, "left", 1))
    assert again.count("tumor") == 1


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_missing_or_corrupt_vector_file_is_rebuilt_from_sqlite(index, tmp_path, damage):
    index.close()
    vectors = tmp_path / "index" / "image.usearch"
    if damage == "missing":
        vectors.unlink()
    else:
        vectors.write_bytes(b"\x00garbage" * 64)
    again = SearchIndex(tmp_path / "index", image_model="m1")
    assert again.recovered is None and again.count("image") == 4


def test_a_change_by_another_process_is_seen_on_the_next_search(index, tmp_path):
    other = SearchIndex(tmp_path / "index", image_model="m1")  # btl-search while the server runs
    other.put(features("S7", 20.0, "left", 7))
    assert index.count("image") == 5


def test_embeddings_of_another_model_version_are_not_searched(index):
    index.serve_image_model("m2")
    assert index.count("image") == 0 and index.count("tumor") == 4


@pytest.mark.parametrize(("query", "reason"), [
    ("wt_ml>=lots", "takes a number"), ("wt_ml>=nan", "finite"), ("size=3", "unknown filter field"),
    ("hemisphere>left", "takes = or !="), ("crosses_midline=maybe", "true or false"), ("wt_ml", "field<op>value"),
])
def test_a_malformed_filter_names_the_problem(query, reason):
    with pytest.raises(InputError, match=reason):
        parse_filters(query, frozenset())


def test_the_service_refills_a_set_aside_index_from_the_datastore(tmp_path):
    root = tmp_path / "studies"
    (study,) = make_studies(root, 1, seed=77)
    store = StudyFolderDatastore(root)
    store.add_label(study, str(truth_path(root / study)), "final", {})
    checkpoint = load_checkpoint(REPO / "monailabel_app" / "model" / "brats_segresnet.pt")
    state = tmp_path / "state"
    (state / "search" / "index").mkdir(parents=True)
    (state / "search" / "index" / "index.sqlite").write_bytes(b"corrupt" * 1000)
    search = SearchService(store, ReportStore(state / "reports"), lambda: checkpoint, state / "search")
    assert search.status()["recovered"] and search.reconcile() == 1 and search.run_pending() == 1
    assert search.status()["studies"] == 1 and search.status()["image_vectors"] == 1
    assert search.similar(study, 5, "both")["hits"] == []  # searchable; nothing else to find
    assert search.thumbnail(study).read_bytes().startswith(b"\x89PNG")
