"""Clinical report core: measurements of one segmentation (volumes, lesions, RANO 2.0 bidimensional
diameters, hemisphere) in :mod:`lib.report.measure`, and the response between two time points
(lesion matching, RANO 2.0 categories, bidimensional and volumetric) in :mod:`lib.report.response`."""
