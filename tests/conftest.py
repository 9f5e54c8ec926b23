"""Suite order and threads for pytest-xdist (``make test``: ``--dist loadfile --no-loadscope-reorder``).

Each test file runs whole on one worker, handed out in collection order; the files that take
longest start first, so that no worker is left running one at the end while the other idles.
Seconds per file on 2 cores, measured with ``--durations=0`` (2026-11-30); the rest follow in
their usual order. A file missing here only costs a little balance.
"""

from __future__ import annotations

import os

import pytest

from lib.compat import highdicom_on_numpy2

# the one NumPy alias highdicom 0.22 needs, once for the suite's process (lib/compat.py)
highdicom_on_numpy2()

# A worker and the servers and trainers it starts get the cores divided among the workers:
# torch's OpenMP threads spin while they wait, so two workers of two threads each on two cores
# fight over them. Set here, before any test module imports torch.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _workers > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))

SLOWEST_FIRST = (
    "test_hosts.py",                # about 300 s (measured under load: 720 s): five hosts, four faults
    "test_server_training.py",      # 205 s: three training runs through a real server
    "test_module_widget.py",        # about 300 s: the Slicer panel clicked through against five servers
    "test_trainer.py",              # 153 s
    "test_dicomweb_datastore.py",   # 140 s: a private Orthanc
    "test_server_pacs.py",          # 115 s
    "test_datastore_contract.py",   # 96 s, and an Orthanc on PostgreSQL
    "test_proxy.py",                # two servers behind nginx under load
    "test_batch.py",                # btl-batch three times on six studies
    "test_security_review.py",      # three servers, a provider, an issuer
    "test_server_client.py",        # 77 s
    "test_uncertainty.py",          # 72 s
    "test_concurrent_writes.py",    # 70 s
    "test_synthbrats.py",           # 67 s
    "test_module_search.py",        # 65 s: the Similar cases section, a server whose search index is filled first
    "test_harmonization_sites.py",  # 52 s
    "test_module_batch.py",         # about 50 s (under load): the Batch section, two servers and a provider
    "test_lib_client.py",           # 45 s
    "test_server_leases.py",        # 44 s
    "test_server_hardening.py",     # 41 s
    "test_correction_effort.py",    # 33 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: tests keep their order in a file
