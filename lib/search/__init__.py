"""Case search: studies found by image similarity, tumor descriptors, report text and patient.

- :mod:`.descriptors`: tumor descriptors of a label (volumes, fractions, lesions, laterality,
  occupancy map) and their vector;
- :mod:`.embedding`: the image embedding from the served network's encoder;
- :mod:`.text`: a signed report's sentences and structured findings; sentence embeddings;
- :mod:`.features`: one study's features, computed from its case and label;
- :mod:`.filters`: measurement filters (``wt_ml>=50``);
- :mod:`.index`: the SQLite (FTS5) + USearch index in one folder;
- :mod:`.thumbnails`: a hit's axial t1c thumbnail with the label outline;
- :mod:`.service`: keeps the index in step with the datastore and answers searches;
- :mod:`.cli`: ``btl-search``.
"""
