"""synthbrats: realistic synthetic BraTS-style multi-sequence brain MRI with tumor labels.

Built on the MNI152 2009a template and its grey/white-matter maps shipped inside the
nilearn wheel. The flow for one case is

    anatomy (deformed template tissue maps)  ->  tumors (labels + mass effect)
    ->  contrast (per-sequence tissue intensities)  ->  scanner (site effects, grids)

``generate_case`` runs it and ``write_case`` stores a case atomically in BraTS naming.
"""

from .case import GeneratorConfig, SyntheticCase, case_id_for, generate_case, write_case

__all__ = ["GeneratorConfig", "SyntheticCase", "case_id_for", "generate_case", "write_case"]
