"""DICOM: identifying the four sequences of a study (``sequences``), building volumes from
series (``volume``), and DICOM Segmentations for labels (``seg``)."""
