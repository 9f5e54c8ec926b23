"""The Slicer module's tests. The Lib tests here (``test_lib_*.py``) need the standard library and
pytest only on the client side, so that they also run under Slicer's Pythons (3.9 and 3.12, see
the Makefile); what needs Slicer's libraries or Qt is in ``module/`` (its own conftest)."""
