"""Suite order and threads for pytest-xdist (``make test``: ``--dist loadfile --no-loadscope-reorder``).

Each test file runs whole on one worker, handed out in collection order; the files that take
longest start first, so that no worker is left running one at the end while the other idles.
Seconds per file on 2 cores, measured with ``--durations=0`` (2026-11-30); the rest follow in
their usual order. A file missing here only costs a little balance.
"""

from __future__ import annotations

import os
import resource
import time

import pytest

try:
    from lib.compat import highdicom_on_numpy2
except ModuleNotFoundError:  # the Slicer Lib tests' venvs (Python 3.9, 3.12): pytest and nothing else
    pass
else:
    highdicom_on_numpy2()  # the one NumPy alias highdicom 0.22 needs, once for the suite's process (lib/compat.py)

# A worker and the servers and trainers it starts get the cores divided among the workers:
# torch's OpenMP threads spin while they wait, so two workers of two threads each on two cores
# fight over them. Set here, before any test module imports torch.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _workers > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))

SLOWEST_FIRST = (  # seconds per file in one `make test` on 2 cores, 2026-12-02 (run beside the Lib tests)
    "test_hosts.py",                # 585 s (300 of them a wait that no longer happens): five hosts, four faults
    "test_datastore_contract.py",   # 217 s: folder, Orthanc, Orthanc on PostgreSQL
    "test_batch.py",                # 228 s: btl-batch three times on six studies
    "test_trainer.py",              # 185 s
    "test_security_review.py",      # 181 s: three servers, a provider, an issuer
    "test_server_training.py",      # 149 s: three training runs through a real server
    "test_module_widget.py",        # 138 s: the Slicer panel clicked through against five servers
    "test_dicomweb_datastore.py",   # 120 s: a private Orthanc
    "test_proxy.py",                # 92 s: two servers behind nginx under load
    "test_server_pacs.py",          # 92 s
    "test_server_classifier_training.py",  # 89 s
    "test_search_server.py",        # 81 s
    "test_server_client.py",        # 78 s
    "test_synthbrats.py",           # 77 s
    "test_module_batch.py",         # 75 s: the Batch section, two servers and a provider
    "test_classifier.py",           # 75 s
    "test_module_search.py",        # 65 s: the Similar cases section, a server whose search index is filled first
    "test_concurrent_writes.py",    # 57 s
    "test_server_hardening.py",     # 53 s
    "test_harmonization_sites.py",  # 45 s
    "test_correction_effort.py",    # 43 s
    "test_server_leases.py",        # 40 s
    "test_pipeline_on_generated_cases.py",  # 40 s
    "test_uncertainty.py",          # 38 s
    "test_jobs_runner.py",          # 37 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: tests keep their order in a file


# BTL_TEST_CPU_LOG=<file>: one line per test, its CPU seconds (this process and the processes it
# started and waited for: servers, trainers, Orthanc) and wall seconds, to see what the suite's
# time is spent on (`sort -k2 -rn`); the durations pytest prints count waiting as well.
_CPU_LOG = os.environ.get("BTL_TEST_CPU_LOG")


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    if not _CPU_LOG:
        yield
        return
    cpu, wall = _cpu_s(), time.monotonic()
    yield
    with open(_CPU_LOG, "a") as log:
        log.write(f"{item.nodeid}\t{_cpu_s() - cpu:.1f}\t{time.monotonic() - wall:.1f}\n")
