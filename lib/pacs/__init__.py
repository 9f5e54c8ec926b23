"""Talking to a PACS: the DICOMweb client the PACS datastore uses, with timeouts, retries and
typed failures (``client``); private servers for tests and demos (``sandbox``: Orthanc, with its
index in SQLite or in a private PostgreSQL)."""
