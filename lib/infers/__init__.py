"""Inference: whole-case segmentation (``pipeline``) and the MONAI Label task over it (``task``)."""
