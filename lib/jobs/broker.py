"""Jobs through a Celery broker (RabbitMQ): the queue, the task the workers run, and the runner
that submits to them.

The queue is durable and its messages persistent, so queued jobs survive a broker restart. A
worker takes one job at a time (prefetch 1) and acknowledges it only when it is finished
(``acks_late``); a worker that dies or loses its link gives its job back to the queue
(``reject_on_worker_lost``, and the broker requeues what an idle connection held), and
another worker runs it. Heartbeats every ``HEARTBEAT_S`` let the broker see a cut link. A job
whose PACS does not answer is retried by the worker with a growing delay. Outcomes come back
on Celery's ``rpc://`` result channel to the process that submitted them; a job whose outcome
has not come back ``stall_s`` after its last sign of life is submitted again under the same
id (an outcome lost with a broker restart costs a second run, never a second label: whoever
stores labels does so once per job id).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task
from celery.result import AsyncResult
from kombu import Exchange, Queue

from .work import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    JobOutcome,
    JobSpec,
    TransientError,
    Workbench,
    given_up,
    retry_delay_s,
)

logger = logging.getLogger(__name__)

QUEUE = TASK = "btl.segment"
#: AMQP heartbeat: a cut link is seen by the broker within about twice this.
HEARTBEAT_S = 10
#: How long a job is tried to be sent while the broker does not answer (a restart).
PUBLISH_FOR_S = 180.0


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached (before any job is sent)."""


def celery_app(broker_url: str) -> Celery:
    """The Celery application of the jobs, for workers and for submitters alike."""
    app = Celery("braintumorlabel", broker=broker_url, backend="rpc://", set_as_current=False)
    exchange = Exchange(QUEUE, type="direct", durable=True)
    app.conf.update(
        task_queues=[Queue(QUEUE, exchange, routing_key=QUEUE, durable=True)],
        task_default_queue=QUEUE, task_default_exchange=QUEUE, task_default_routing_key=QUEUE,
        task_default_delivery_mode="persistent", task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1, task_track_started=True, result_persistent=True,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        broker_heartbeat=HEARTBEAT_S, broker_connection_retry_on_startup=True,
        broker_transport_options={"confirm_publish": True}, worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def check_broker(app: Celery, timeout_s: float = 10.0) -> None:
    """:class:`BrokerUnavailable` naming the broker (without its password) when it does not answer."""
    connection = app.connection_for_write()
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except Exception as exc:
        raise BrokerUnavailable(f"the job broker at {connection.as_uri()} cannot be reached: "
                                f"{type(exc).__name__}: {exc}") from None
    finally:
        connection.release()


def register_segment_task(app: Celery, workbench: Workbench) -> Task:
    """The task a worker runs: :meth:`Workbench.run`, retried while the study's PACS does not answer."""

    @app.task(name=TASK, bind=True, max_retries=None)
    def segment(self: Task, spec: dict[str, Any]) -> dict[str, Any]:
        job = JobSpec.from_dict(spec)
        try:
            outcome = workbench.run(job)
            logger.info("job %s: %s %s in %.1f s%s", job.job_id, job.ref.study, outcome.state, outcome.seconds,
                        f" ({outcome.error})" if outcome.error else "")
            return outcome.to_message()
        except TransientError as exc:
            wait_s = retry_delay_s(self.request.retries)
            if wait_s is None:
                return given_up(job, exc, workbench.name).to_message()
            logger.warning("job %s: %s; retrying in %.0f s", job.job_id, exc, wait_s)
            raise self.retry(countdown=wait_s) from exc

    return segment


@dataclass
class _Pending:
    spec: JobSpec
    result: AsyncResult
    last_seen: float
    state: str = QUEUED
    worker: str = ""


class CeleryRunner:
    """Submits jobs to the workers of ``broker_url`` and collects their outcomes."""

    def __init__(self, broker_url: str, stall_s: float = 1800.0) -> None:
        self.app = celery_app(broker_url)
        check_broker(self.app)
        self.stall_s = stall_s
        self._pending: dict[str, _Pending] = {}
        self._cancelled: set[str] = set()

    def submit(self, spec: JobSpec) -> None:
        self._cancelled.discard(spec.job_id)  # asked for again: a cancelled run of it counts after all
        if spec.job_id in self._pending:
            return
        self._pending[spec.job_id] = _Pending(spec, self._send(spec), time.monotonic())

    def _send(self, spec: JobSpec) -> AsyncResult:
        """Publish the job (confirmed by the broker), waiting up to ``PUBLISH_FOR_S`` for a broker
        that is restarting; :class:`BrokerUnavailable` after that."""
        deadline = time.monotonic() + PUBLISH_FOR_S
        while True:
            try:
                return self.app.send_task(TASK, args=[spec.to_dict()], task_id=spec.job_id, queue=QUEUE)
            except OSError as exc:  # kombu's connection errors are OSErrors
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(f"job {spec.job_id} could not be sent for {PUBLISH_FOR_S:g} s: "
                                            f"{type(exc).__name__}: {exc}") from None
                logger.warning("sending job %s: %s; trying again", spec.job_id, exc)
                time.sleep(2.0)

    def poll(self, timeout_s: float) -> list[JobOutcome]:
        deadline = time.monotonic() + timeout_s
        while True:
            outcomes = self._collect()
            if outcomes or time.monotonic() >= deadline:
                return outcomes
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    def _collect(self) -> list[JobOutcome]:
        outcomes, now = [], time.monotonic()
        for job_id, job in list(self._pending.items()):
            try:
                ready = job.result.ready()
                state, info = job.result.state, job.result.info
            except Exception as exc:  # the broker went away: try again at the next poll
                logger.warning("waiting for job %s: %s: %s", job_id, type(exc).__name__, exc)
                continue
            if state == "STARTED":
                job.state, job.last_seen = RUNNING, now
                hostname = str(info.get("hostname", "")) if isinstance(info, dict) else ""
                job.worker = hostname.removeprefix("celery@")  # Celery's name for a worker named without "@"
            if not ready:
                if now - job.last_seen > self.stall_s:
                    logger.warning("job %s: no outcome for %.0f s; submitting it again", job_id, now - job.last_seen)
                    job.result, job.last_seen, job.state = self._send(job.spec), now, QUEUED
                continue
            del self._pending[job_id]
            outcomes.append(self._outcome(job, state))
        return outcomes

    def _outcome(self, job: _Pending, state: str) -> JobOutcome:
        if job.spec.job_id in self._cancelled:
            return JobOutcome(job.spec.job_id, job.spec.ref.study, CANCELLED, error="cancelled")
        if state == "SUCCESS" and isinstance(job.result.result, dict):
            return JobOutcome.from_message(job.result.result)
        return JobOutcome(job.spec.job_id, job.spec.ref.study, FAILED, worker=job.worker,
                          error=f"the worker failed: {job.result.result!r}"[:500], error_kind=state)

    def states(self) -> dict[str, tuple[str, str]]:
        return {job_id: (job.state, job.worker) for job_id, job in self._pending.items()}

    def cancel(self, job_ids: Iterable[str]) -> None:
        ids = [j for j in job_ids if j in self._pending]
        self._cancelled.update(ids)
        if ids:
            self.app.control.revoke(ids)

    def close(self) -> None:
        self.app.close()
