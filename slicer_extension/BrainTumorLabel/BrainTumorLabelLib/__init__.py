"""GUI-free parts of the BrainTumorLabel module: the server client, background jobs, sequence
assignment by name and the label table. Nothing here imports slicer, qt, ctk or vtk, so it
runs (and is tested) in plain Python; the module's Logic and Widget use it."""
