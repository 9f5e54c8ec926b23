"""Label efficiency of the next-sample strategies: a scripted annotator against a real server.

The served model starts as ``--start-model`` (default the bundled one). The pool is a different
"site" (generated with other scanners and per-tissue contrasts, ``synthbrats --style raw
--domain-randomization 1``), or real labelled cases. ``--mode classifier`` retrains the served
model's voxel classifier each round (on the corrections plus ``--extra-cases``, the server's
``train_extra_cases``: minutes on a CPU), ``--mode network`` fine-tunes its network. Per arm (a
``next_sample`` strategy) and repeat:

1. a fresh copy of the pool is served by ``btl-server`` (its own model folder, split, scores);
2. each round, the annotator asks ``POST /activelearning/<arm>`` for ``--per-round`` studies
   under its client id and submits each study's ground truth as the ``final`` label (a
   perfect correction); for the scored arms it first waits until the server has scored every
   unlabelled study for the served model, so the strategy never falls back to random;
3. ``POST /train/brats_segresnet`` retrains the served model on all final labels with the
   product's rule (fixed split, published only if not worse on the validation cases);
4. the model the round trained is evaluated on held-out cases of the new site (mean WT/TC/ET
   Dice, through the served pipeline on each case's own grid): the served one when the round
   published it, else the candidate kept beside it. A budget of a few corrections gives the
   fixed validation split one or two cases, fewer than the ``min_validation_cases`` a run needs
   to replace the served model, so the gate would hide what the labels taught; whether each
   round was published (and why not) is recorded beside its Dice.

Results (every round of every run) go to ``<out>.json`` after each round, so a stopped run
resumes where it was (a half-done arm restarts). ``<out>.md`` and ``<out>.png`` summarise
the mean and spread over repeats and the number that matters: the share of corrections the
uncertainty arm needs to reach the random arm's final Dice.

    .venv/bin/synthbrats --cases 16 --seed 7100 --out data/al/pool --spacing 2 --style raw --domain-randomization 1
    .venv/bin/synthbrats --cases 6 --seed 7200 --out data/al/heldout --spacing 2 --style raw --domain-randomization 1
    .venv/bin/python experiments/label_efficiency.py --pool data/al/pool --heldout data/al/heldout \\
        --work data/al/runs --out experiments/results/label_efficiency

The classifier arm on real cases (a pool and held-out cases of real patients; the start model's
classifier trained on generated cases only, see docs/model-card.md):

    .venv/bin/python experiments/label_efficiency.py --mode classifier --pool data/al-real/pool \\
        --heldout data/al-real/heldout --start-model data/al-real/start.pt \\
        --extra-cases data/synth6v2:data/synth-old6 --rounds 3 --per-round 3 \\
        --work data/al-real/runs --out experiments/results/label_efficiency_classifier
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from lib.atomic import read_json, write_json  # noqa: E402
from lib.brats import labelled_cases  # noqa: E402
from lib.evaluation import mean_score, score_checkpoint  # noqa: E402
from lib.postprocessing import REGION_ORDER  # noqa: E402

from _server import monailabel_process  # noqa: E402

MODEL = "brats_segresnet"
ARMS = ("uncertainty", "foreground", "random")
SCORED_ARMS = ("uncertainty", "foreground")
#: One fine-tuning round on 2 CPU cores (one to two minutes): from the served model, 60 steps.
TRAIN_OPTIONS: dict[str, dict[str, Any]] = {
    "network": {"max_epochs": 6, "steps_per_epoch": 10, "batch_size": 2, "val_every": 2, "fine_tune": True,
                "classifier": False},
    # the served model's classifier, retrained with the product's defaults (TrainConfig)
    "classifier": {"fine_tune": True, "classifier": True},
}
ANNOTATOR = "scripted-annotator"
BUNDLED = REPO / "monailabel_app" / "model" / f"{MODEL}.pt"


class HeldOut:
    """Held-out Dice of checkpoint files, computed once per file content."""

    def __init__(self, cases: list[dict[str, Any]], cache: Path) -> None:
        self.cases, self.cache = cases, cache
        self.known: dict[str, dict[str, float]] = read_json(cache)

    def dice(self, checkpoint: Path) -> dict[str, float]:
        digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        if digest not in self.known:
            self.known[digest] = score_checkpoint(checkpoint, self.cases)
            write_json(self.cache, self.known)
        return self.known[digest]


def served_checkpoint(studies: Path) -> Path:
    """The model the server of ``studies`` serves now (its model folder's, else the bundled one)."""
    published = studies / ".braintumorlabel" / "model" / f"{MODEL}.pt"
    return published if published.is_file() else BUNDLED


def wait_for_scores(url: str, unlabelled: set[str], timeout_s: float) -> float:
    """Start scoring (a next_sample request without a client id takes no lease) and wait until
    every study of ``unlabelled`` has a score for the served model; returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        requests.post(f"{url}/activelearning/uncertainty", json={}, timeout=60).raise_for_status()
        time.sleep(2)
        status = requests.get(f"{url}/btl/uncertainty", timeout=30).json()
        if not status["scoring"] and unlabelled <= set(status["scores"]):
            return time.monotonic() - start
    raise TimeoutError(f"scores not complete after {timeout_s} s")


def annotate(url: str, arm: str, studies: Path, count: int) -> list[str]:
    """Ask the arm's strategy for ``count`` studies and submit each one's ground truth as final."""
    picked = []
    for _ in range(count):
        answer = requests.post(f"{url}/activelearning/{arm}", json={"client_id": ANNOTATOR}, timeout=120)
        answer.raise_for_status()
        study = answer.json().get("id")
        if not study:
            break
        with open(studies / study / f"{study}-seg.nii.gz", "rb") as label:
            saved = requests.put(f"{url}/datastore/label", params={"image": study, "tag": "final"},
                                 files={"label": ("final.nii.gz", label)}, timeout=120)
        saved.raise_for_status()
        picked.append(study)
    return picked


def train_round(url: str, options: dict[str, Any], seed: int, timeout_s: float) -> dict[str, Any]:
    """Retrain on all final labels; the run's publication decision and the checkpoint it trained
    (``checkpoint``: published or kept as a candidate)."""
    started = requests.post(f"{url}/train/{MODEL}", json={**options, "seed": seed}, timeout=60)
    started.raise_for_status()
    deadline = time.monotonic() + timeout_s
    while (status := requests.get(f"{url}/train/", timeout=30).json())["status"] in ("SUBMITTED", "RUNNING"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"training did not finish in {timeout_s} s")
        time.sleep(3)
    if status["status"] != "DONE":
        raise RuntimeError(f"training ended {status['status']}: {status.get('details', [])[-5:]}")
    stats = requests.get(f"{url}/info/", timeout=30).json()["train_stats"][MODEL]
    publication = stats["publication"]
    reason = str(publication["reason"]).replace(f"{REPO}/", "")  # results name no machine path
    return {"published": bool(publication["published"]), "reason": reason,
            "checkpoint": publication["checkpoint"], "duration_s": round(float(stats.get("duration_s", 0.0)), 1)}


def run_arm(arm: str, repeat: int, args: argparse.Namespace, heldout: HeldOut, log: Path,
            record: dict[str, Any], save: Any) -> None:
    """One arm, one repeat, on a fresh copy of the pool; ``record['rounds']`` grows per round."""
    work = args.work / f"{arm}-{repeat}"
    shutil.rmtree(work, ignore_errors=True)
    studies = work / "studies"
    shutil.copytree(args.pool, studies)
    pool = [c["case_id"] for c in labelled_cases(studies)]
    if args.start_model:
        start = studies / ".braintumorlabel" / "model" / f"{MODEL}.pt"
        start.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.start_model, start)
    record["rounds"] = [{"round": 0, "labels": 0, "picked": [], "dice": heldout.dice(served_checkpoint(studies))}]
    conf = {"train_extra_cases": args.extra_cases} if args.extra_cases else None
    with monailabel_process(studies, log, conf=conf, timeout_s=300) as (url, _):
        for round_no in range(1, args.rounds + 1):
            t0 = time.monotonic()
            unlabelled = set(pool) - {s for r in record["rounds"] for s in r["picked"]}
            scoring_s = wait_for_scores(url, unlabelled, args.timeout_s) if arm in SCORED_ARMS else 0.0
            picked = annotate(url, arm, studies, args.per_round)
            training = train_round(url, TRAIN_OPTIONS[args.mode], seed=1000 * repeat + round_no,
                                   timeout_s=args.timeout_s)
            trained = training.pop("checkpoint")
            dice = heldout.dice(Path(trained) if trained else served_checkpoint(studies))
            labels = record["rounds"][-1]["labels"] + len(picked)
            record["rounds"].append({"round": round_no, "labels": labels, "picked": picked, "dice": dice,
                                     "scoring_s": round(scoring_s, 1), "training": training,
                                     "seconds": round(time.monotonic() - t0, 1)})
            print(f"{arm} repeat {repeat} round {round_no}: {labels} labels, mean Dice {mean_score(dice):.3f} "
                  f"({'published' if training['published'] else 'kept as a candidate'}; "
                  f"{time.monotonic() - t0:.0f} s)",
                  flush=True)
            save()
    record["done"] = True
    save()


def curve(runs: list[dict[str, Any]], key: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Labels and the per-repeat values (repeats x rounds) of one arm's finished runs."""
    labels = np.array([r["labels"] for r in runs[0]["rounds"]])
    values = np.array([[mean_score(r["dice"]) if key == "mean" else r["dice"][key] for r in run["rounds"]]
                       for run in runs])
    return labels, values


def labels_to_reach(labels: np.ndarray, values: np.ndarray, target: float) -> float | None:
    """Fewest labels at which the (linearly interpolated) curve first reaches ``target``."""
    for i in range(len(labels)):
        if values[i] >= target:
            if i == 0:
                return float(labels[0])
            frac = (target - values[i - 1]) / (values[i] - values[i - 1])
            return float(labels[i - 1] + frac * (labels[i] - labels[i - 1]))
    return None


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Mean and spread per arm and number of labels, and the uncertainty arm's share."""
    summary: dict[str, Any] = {"arms": {}}
    for arm in ARMS:
        runs = [r for r in results["runs"] if r["arm"] == arm and r.get("done")]
        if not runs:
            continue
        labels, values = curve(runs)
        rounds = [r for run in runs for r in run["rounds"][1:]]
        summary["arms"][arm] = {"repeats": len(runs), "labels": labels.tolist(),
                                "published_rounds": f"{sum(r['training']['published'] for r in rounds)}/{len(rounds)}",
                                "mean": values.mean(0).round(4).tolist(), "sd": values.std(0).round(4).tolist(),
                                **{region: curve(runs, region)[1].mean(0).round(4).tolist()
                                   for region in REGION_ORDER}}
    arms = summary["arms"]
    if "random" in arms and "uncertainty" in arms:
        start, target = arms["random"]["mean"][0], arms["random"]["mean"][-1]
        summary["random_final_dice"] = target
        summary["starting_dice"] = start
        if target <= start:  # nothing to reach: the share would be 0% and mean nothing
            summary["uncertainty_labels_to_reach_random"] = None
            summary["uncertainty_share_of_random_labels"] = None
            summary["verdict"] = (f"not measurable: random's final Dice {target:.3f} is not above the starting "
                                  f"model's {start:.3f} (retraining did not help at this budget)")
        else:
            needed = labels_to_reach(np.array(arms["uncertainty"]["labels"]),
                                     np.array(arms["uncertainty"]["mean"]), target)
            share = None if needed is None else round(needed / arms["random"]["labels"][-1], 3)
            summary["uncertainty_labels_to_reach_random"] = needed
            summary["uncertainty_share_of_random_labels"] = share
            summary["verdict"] = (f"uncertainty reaches random's final Dice {target:.3f} with {share:.0%} of its "
                                  "corrections" if share is not None else
                                  f"uncertainty does not reach random's final Dice {target:.3f}")
    return summary


def write_outputs(results: dict[str, Any], out: Path) -> None:
    summary = results["summary"] = summarise(results)
    write_json(out.with_suffix(".json"), results)
    if not summary["arms"]:
        return
    counts = next(iter(summary["arms"].values()))["labels"]
    lines = ["| arm | repeats | " + " | ".join(f"{n} labels" for n in counts) + " | rounds published |",
             "|---|---|" + "---|" * len(counts) + "---|"]
    for arm, row in summary["arms"].items():
        cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(row["mean"], row["sd"], strict=True))
        lines.append(f"| {arm} | {row['repeats']} | {cells} | {row['published_rounds']} |")
    lines += ["", "Mean of WT/TC/ET Dice on the held-out cases (mean ± SD over repeats) of "
              "each round's trained model, published or kept as a candidate.",
              f"Verdict: {summary.get('verdict', 'needs the random and uncertainty arms')}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(summary, out.with_suffix(".png"))


def plot(summary: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"uncertainty": "#c0392b", "foreground": "#2471a3", "random": "#7f8c8d"}
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), sharex=True)
    for ax, key, title in zip(axes, ("mean", *REGION_ORDER), ("mean of WT/TC/ET", *REGION_ORDER), strict=True):
        for arm, row in summary["arms"].items():
            labels, mean = np.array(row["labels"]), np.array(row[key])
            ax.plot(labels, mean, "-o", ms=4, color=colours[arm], label=f"{arm} (n={row['repeats']})")
            if key == "mean":
                sd = np.array(row["sd"])
                ax.fill_between(labels, mean - sd, mean + sd, color=colours[arm], alpha=0.15)
        ax.set_title(f"held-out Dice: {title}")
        ax.set_xlabel("corrections submitted")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Label efficiency on the held-out cases (band: ± SD over repeats)"
                 + (f"; {summary['verdict']}" if "verdict" in summary else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=Path, required=True, help="generated labelled cases served to the annotator")
    ap.add_argument("--heldout", type=Path, required=True, help="generated labelled cases of the same site")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (one copy of the pool per run)")
    ap.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "label_efficiency",
                    help="output stem: .json, .md, .png")
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-round", type=int, default=3, help="corrections between two trainings")
    ap.add_argument("--timeout-s", type=float, default=1800.0)
    ap.add_argument("--mode", choices=tuple(TRAIN_OPTIONS), default="network",
                    help="what a round retrains: the served model's network, or its voxel classifier")
    ap.add_argument("--start-model", type=Path, help="the model served at round 0 (default: the bundled one)")
    ap.add_argument("--extra-cases", help="folders (':'-separated) every round also trains on (the server's "
                                          "train_extra_cases)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    results: dict[str, Any] = read_json(args.out.with_suffix(".json"))
    setup = {"pool": sorted(c["case_id"] for c in labelled_cases(args.pool)),
             "heldout": sorted(c["case_id"] for c in labelled_cases(args.heldout)),
             "rounds": args.rounds, "per_round": args.per_round, "train_options": TRAIN_OPTIONS[args.mode],
             "start_model": args.start_model.name if args.start_model else BUNDLED.name,
             "extra_cases": args.extra_cases, "scored": "the round's trained model (published or candidate)"}
    if results.get("setup") != setup:
        results = {"setup": setup, "runs": []}
    heldout = HeldOut(labelled_cases(args.heldout), args.work / "heldout_dice.json")
    results["runs"] = [r for r in results["runs"] if r.get("done")]  # a half-done run starts again

    def save() -> None:
        write_outputs(results, args.out)

    for repeat in range(args.repeats):
        for arm in args.arms:
            if any(r["arm"] == arm and r["repeat"] == repeat for r in results["runs"]):
                continue
            record: dict[str, Any] = {"arm": arm, "repeat": repeat, "rounds": []}
            results["runs"].append(record)
            run_arm(arm, repeat, args, heldout, args.work / f"{arm}-{repeat}.log", record, save)
    save()
    print(json.dumps(results["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
