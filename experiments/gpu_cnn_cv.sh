#!/usr/bin/env bash
# The network alone at full size, on a GPU, out of fold on the classifier comparison's folds.
#
#   experiments/gpu_cnn_cv.sh DATA [WORK]
#
# DATA is the folder experiments/prepare_data.py rebuilds (real/, extra/, synth6v2/, synth-old6/);
# WORK defaults to DATA/gpu-cv and must hold folds.json of experiments/classifier_cv.py (its --work).
# Per fold: a SegResNet of 16 filters at 1.5 mm trained from scratch on the other folds' real
# cases and the 12 generated ones (btl-train --device cuda, 60 epochs of 20 steps, the last one kept:
# no selection on a held-out case), then every real case scored by the fold that held it out
# (experiments/evaluate_model.py --folds). About 9 minutes on one H200; nothing else needs a GPU.
# Not yet run: no GPU was lent to the session that wrote it (docs/model-card.md).
set -euo pipefail
DATA=${1:?usage: experiments/gpu_cnn_cv.sh DATA [WORK]}
WORK=${2:-$DATA/gpu-cv}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
mkdir -p "$WORK/real14"
for case in "$DATA"/real/*/ "$DATA"/extra/*/; do ln -sfn "$(realpath "$case")" "$WORK/real14/$(basename "$case")"; done
# the folds of the classifier comparison, in experiments/cross_validate.py's format, one folder of links per fold
"$PY" - "$WORK" "$DATA" <<'PY'
import json, sys
from pathlib import Path
work, data = Path(sys.argv[1]), Path(sys.argv[2])
folds = json.loads((work / "folds.json").read_text())["folds"]
cases = {p.name: p for p in (work / "real14").iterdir()}
record = {"folds": []}
for i, held_out in enumerate(folds):
    train = work / f"fold{i}" / "cases"
    train.mkdir(parents=True, exist_ok=True)
    for name, path in cases.items():
        if name not in held_out and not (train / name).exists():
            (train / name).symlink_to(path.resolve())
    for folder in ("synth6v2", "synth-old6"):
        for case in (data / folder).iterdir():
            if case.is_dir() and not (train / case.name).exists():
                (train / case.name).symlink_to(case.resolve())
    record["folds"].append({"held_out": held_out, "checkpoint": str(work / f"fold{i}" / "model.pt")})
(work / "gpu-folds.json").write_text(json.dumps(record, indent=1))
PY
n=$("$PY" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['folds']))" "$WORK/gpu-folds.json")
for ((i = 0; i < n; i++)); do
  [ -f "$WORK/fold$i/model.pt" ] && continue
  "$BIN/btl-train" --cases "$WORK/fold$i/cases" --out "$WORK/fold$i/model.pt" --version "gpu-segresnet16-1.5mm-fold$i" \
    --device cuda --classifier false --init-filters 16 --spacing-mm 1.5 --roi-size 96 --val-roi-size 128 \
    --batch-size 8 --max-epochs 60 --steps-per-epoch 20 --val-fraction 0.01 --val-every 60 \
    --num-workers 4 --cache "$WORK/cache"
done
"$PY" experiments/evaluate_model.py --cases "$WORK/real14" --folds "$WORK/gpu-folds.json" --floor \
  --out experiments/results/gpu_cnn_cv.json --markdown experiments/results/gpu_cnn_cv.md
