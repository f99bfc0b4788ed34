"""The case-level model (issue 17 item 7) on generated CT-like volumes, bigger than its slow test.

A functional check, not clinical evidence: real labelled CT volumes are not available here, so the
cases are generated (medreview.ml.synthetic_volumes: a trunk, organs, noise, and in positive cases a
small bright lesion in 2-4 consecutive slices). For each seed it generates the cases (one patient
each), trains through medreview.ml.training.cases.train_case_model (split by patient into train /
validation / held-out test, best epoch and calibration on validation), and scores the held-out test
part:

- ``test_roc_auc`` (with its 95% interval) and ``test_accuracy`` at the threshold chosen on validation;
- ``top1_on_lesion``: of the test positives the model calls positive, the share whose top-attention
  slice holds the lesion; ``top3_on_lesion``: the share with a lesion slice among the top three;
- ``map_on_lesion``: of the test positives, the share whose top slice's Grad-CAM peaks on the lesion
  (the hottest cell of the feature map holds or touches it);
- ``train_seconds`` and ``train_slices_per_second`` (slices seen in training per second).

Targets: test ROC AUC >= 0.95 and top1_on_lesion >= 0.9 for every seed. Prints one JSON object.

Usage: .venv/bin/python bench/case_model.py [--cases 400] [--slices 24] [--size 32] [--epochs 8]
       [--seeds 0 1 2] [--architecture attention_mil|attention_mil_25d] [--encoder small_cnn|bn_cnn]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_AUC, TARGET_TOP1 = 0.95, 0.9


def run_seed(args: argparse.Namespace, seed: int) -> dict:
    from medreview.ml.cases import predict_cases, top_slice_maps
    from medreview.ml.synthetic_volumes import lesion_volumes
    from medreview.ml.training.cases import CaseFitConfig, train_case_model

    data = lesion_volumes(args.cases, slices=args.slices, size=args.size, seed=seed)
    config = CaseFitConfig(
        architecture=args.architecture,
        encoder=args.encoder,
        input_size=args.size,
        max_slices=max(args.slices, 1),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=seed,
    )
    result = train_case_model(
        data.volumes, data.labels, data.patient_keys, ["absent", "present"], config, case_keys=data.case_keys
    )
    metrics, case_config = result.metrics, config.case_config()
    test = [int(i) for i in result.split.test]
    predictions = predict_cases(
        result.model, case_config, [data.volumes[i] for i in test], metrics["temperature"], metrics["threshold"]
    )
    found = [(i, p) for i, p in zip(test, predictions, strict=True) if data.labels[i] == 1 and p.called == 1]
    top1 = [p.top_slices[0] in data.lesion_slices[i] for i, p in found]
    top3 = [bool(set(p.top_slices[:3]) & set(data.lesion_slices[i])) for i, p in found]
    on_map = []
    for index, prediction in zip(test, predictions, strict=True):
        if data.labels[index] != 1:
            continue
        heat = top_slice_maps(result.model, case_config, data.volumes[index], prediction.top_slices[:1], 1)[0]
        cell = args.size / heat.shape[0]  # pixels per feature-map cell
        row, column = np.unravel_index(heat.argmax(), heat.shape)
        lesion_row, lesion_column = data.lesion_centres[index]
        centre_row, centre_column = (row + 0.5) * cell - 0.5, (column + 0.5) * cell - 0.5
        reach = cell / 2 + 2.5  # the cell holds the lesion's centre or lies within its radius of it
        on_map.append(abs(centre_row - lesion_row) <= reach and abs(centre_column - lesion_column) <= reach)
    train_slices = sum(len(data.volumes[i]) for i in result.split.train) * len(result.logs)
    return {
        "seed": seed,
        "test_cases": len(test),
        "test_roc_auc": metrics["test"]["roc_auc"],
        "test_roc_auc_ci": metrics["test"]["roc_auc_ci"],
        "test_accuracy": metrics["test"]["accuracy"],
        "validation_roc_auc_by_epoch": [round(log.val_auc, 4) for log in result.logs],
        "positives_called": len(found),
        "top1_on_lesion": float(np.mean(top1)) if top1 else None,
        "top3_on_lesion": float(np.mean(top3)) if top3 else None,
        "map_on_lesion": float(np.mean(on_map)) if on_map else None,
        "train_seconds": metrics["train_seconds"],
        "train_slices_per_second": round(train_slices / max(metrics["train_seconds"], 1e-9), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--architecture", default="attention_mil")
    parser.add_argument("--encoder", default="small_cnn")
    args = parser.parse_args()
    started = time.monotonic()
    runs = [run_seed(args, seed) for seed in args.seeds]
    aucs = [run["test_roc_auc"] for run in runs]
    top1 = [run["top1_on_lesion"] for run in runs if run["top1_on_lesion"] is not None]
    report = {
        "note": "functional test on generated volumes, not clinical evidence",
        "config": {key: value for key, value in vars(args).items() if key != "seeds"},
        "runs": runs,
        "min_test_roc_auc": min(aucs),
        "min_top1_on_lesion": min(top1) if top1 else None,
        "targets": {"test_roc_auc": TARGET_AUC, "top1_on_lesion": TARGET_TOP1},
        "meets_targets": min(aucs) >= TARGET_AUC and bool(top1) and min(top1) >= TARGET_TOP1,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
