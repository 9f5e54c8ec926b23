"""Postprocessing: from the network's region maps to a clean BraTS label map and its volumes."""

from .regions import (
    REGION_ORDER,
    enhancing_fractions,
    keep_large_components,
    label_volumes_ml,
    labels_to_regions,
    postprocess,
    regions_to_labels,
    relabel_unenhancing,
    remove_coreless_lesions,
    remove_small_lesions,
)

__all__ = ["REGION_ORDER", "enhancing_fractions", "keep_large_components", "label_volumes_ml", "labels_to_regions",
           "postprocess", "regions_to_labels", "relabel_unenhancing", "remove_coreless_lesions", "remove_small_lesions"]
