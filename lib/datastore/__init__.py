"""Datastores: where studies and their labels live (a local folder; a PACS over DICOMweb)."""
