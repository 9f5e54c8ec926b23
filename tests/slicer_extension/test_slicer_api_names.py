"""Every Slicer, CTK, qMRML and VTK name the module calls exists in Slicer 5.8: each is in the
committed table of where Slicer v5.8.0 (or the CTK it builds) declares it (``_slicer_api.py``
rebuilds the table from the sources). A name the module starts calling fails here until it is
looked up; a name it stopped calling fails until it is taken out."""

from __future__ import annotations

import re

from _slicer_api import called_names, read_table

WHERE = re.compile(r"(CTK@[0-9a-f]{10} )?[\w/.+-]+\.(h|py):\d+|VTK vtk\w+")


def test_every_name_the_module_calls_is_declared_in_slicer_5_8():
    called, table = called_names(), read_table()
    missing = {name: called[name] for name in sorted(set(called) - set(table))}
    assert not missing, f"not in slicer-api-5.8.0.tsv (name: where the module calls it): {missing}"
    assert {"setSourceVolumeNode", "loadSeriesByUID", "setSliceViewerLayers", "connectGui"} <= set(called)


def test_the_table_lists_only_called_names_each_with_its_declaration():
    called, table = called_names(), read_table()
    assert sorted(set(table) - set(called)) == []
    assert [name for name, where in table.items() if not WHERE.fullmatch(where)] == []


def test_a_name_slicer_5_8_lacks_is_caught():
    # vtkSegment.SetTerminology() came with Slicer 5.10: the module writes the terminology tag instead
    assert "SetTerminology" not in read_table() and "SetTerminology" not in called_names()
