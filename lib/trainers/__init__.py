"""Training: cached preprocessing and augmented patches (``data``), a split that never moves a
case (``split``), the loop (``engine``), one run from labelled cases (``run``), the
``btl-train`` command (``cli``) and the MONAI Label task (``task``)."""
