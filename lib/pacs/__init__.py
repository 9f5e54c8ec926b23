"""Talking to a PACS: a private Orthanc for tests and demos (``sandbox``)."""
