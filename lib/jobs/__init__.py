"""Segmentation jobs: one study at a time on any host, cohorts of many, through a real queue.

- :mod:`~lib.jobs.work`: a job (what it names, what it gives back) and the code a worker runs;
- :mod:`~lib.jobs.runners`: where jobs run: in this process (the default, no broker needed);
- :mod:`~lib.jobs.broker`: or on workers anywhere, through Celery on RabbitMQ (``BTL_BROKER_URL``);
- :mod:`~lib.jobs.cohort`: a cohort of studies, resumable and cached by content and model version;
- :mod:`~lib.jobs.worker`, :mod:`~lib.jobs.cli`: ``btl-worker`` and ``btl-batch``;
- :mod:`~lib.jobs.sandbox`: a private RabbitMQ for tests and benchmarks.
"""
