"""Postprocessing: from the network's region maps to a clean BraTS label map and its volumes."""

from .regions import (
    RegionsToLabelsd,
    label_volumes_ml,
    regions_to_labels,
    remove_small_lesions,
)

__all__ = ["RegionsToLabelsd", "label_volumes_ml", "regions_to_labels", "remove_small_lesions"]
