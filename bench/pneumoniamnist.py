"""PneumoniaMNIST through the app, against bare Keras in the same run.

1. Writes the shared train split as PNG class folders (normal/, pneumonia/) in a temp dir.
2. Imports them with `python -m medreview import-folder` (the CLI, a separate process) and prints
   files/s.
3. Trains through the app's job path with the default architecture (`python -m medreview train
   --wait`, which queues the job on the SQLite huey queue and runs it in a worker process), and
   reads the run's training images/s.
4. Trains a bare `model.fit` of the same architecture on the same arrays (the run's own training
   split, same epochs, batch size, seed and determinism) in this process, and prints the ratio.
5. Scores the app's model on the official validation split (never seen in training) and prints
   ROC AUC and accuracy. Targets: ratio >= 0.95, validation AUC >= 0.97.

Usage: .venv/bin/python bench/pneumoniamnist.py [--epochs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pneumoniamnist" / "pneumoniamnist_28_trainval.npz"
CLASS_NAMES = ("normal", "pneumonia")


def write_class_folders(images: np.ndarray, labels: np.ndarray, folder: Path) -> int:
    for name in CLASS_NAMES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(pixels).save(folder / CLASS_NAMES[int(label)] / f"train-{index:05d}.png")
    return len(images)


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDREVIEW_DATA_DIR": str(data_dir)}
    env.pop("MEDREVIEW_DATABASE_URL", None)
    env.pop("MEDREVIEW_REDIS_URL", None)
    completed = subprocess.run(
        [sys.executable, "-m", "medreview", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if completed.returncode not in (0,):
        sys.exit(f"`medreview {' '.join(args)}` failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return completed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the app's default")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this benchmark reads the shared PneumoniaMNIST file in place")
    arrays = np.load(DATA)
    work = args.keep or Path(tempfile.mkdtemp(prefix="medreview-bench-"))
    data_dir, folders = work / "data", work / "classes"

    count = write_class_folders(arrays["train_images"], arrays["train_labels"], folders)
    started = time.perf_counter()
    cli(data_dir, "import-folder", str(folders))
    import_seconds = time.perf_counter() - started
    print(f"import-folder: {count} files in {import_seconds:.1f} s = {count / import_seconds:.0f} files/s")

    train_args = ["train", "--wait"] + (["--epochs", str(args.epochs)] if args.epochs else [])
    started = time.perf_counter()
    metrics = json.loads(cli(data_dir, *train_args).stdout)
    print(f"app training run (queue + worker + data loading + fit): {time.perf_counter() - started:.1f} s wall")

    # The same arrays the job trained on, from the same store, split as the job split them.
    os.environ["MEDREVIEW_DATA_DIR"] = str(data_dir)
    from medreview.jobs import list_jobs
    from medreview.ml.registry import active_model
    from medreview.ml.training.dataset import load_dataset
    from medreview.ml.training.fit import FitConfig, build_and_compile, load_model, predict_probabilities
    from medreview.ml.training.metrics import classification_metrics
    from medreview.store import Store

    store = Store.open()
    job = list_jobs(store, kind="train", limit=1)[0]
    config = FitConfig(**job.result["config"])
    dataset = load_dataset(store, input_size=config.input_size)
    position = {image_id: i for i, image_id in enumerate(dataset.image_ids)}
    train_index = np.array([position[i] for i in job.result["dataset"]["train_image_ids"]])
    x_train, y_train = dataset.images[train_index], dataset.labels[train_index]

    model, fit_kwargs = build_and_compile(x_train, y_train, len(dataset.class_names), config)
    started = time.perf_counter()
    model.fit(x_train[..., None], y_train, epochs=config.epochs, batch_size=config.batch_size, verbose=0, **fit_kwargs)
    bare_seconds = time.perf_counter() - started
    bare_rate = len(train_index) * config.epochs / bare_seconds
    app_rate = metrics["train_images_per_second"]
    print(
        f"training: app {app_rate:.0f} img/s, bare model.fit {bare_rate:.0f} img/s, ratio {app_rate / bare_rate:.3f} "
        f"({config.architecture}, {config.input_size} px, {config.epochs} epochs, batch {config.batch_size})"
    )
    print(
        f"app run's own validation (patient split of train): ROC AUC {metrics['roc_auc']:.4f}, "
        f"accuracy {metrics['accuracy']:.4f}"
    )

    version = active_model(store)
    app_model = load_model(store.data_path(version.path))
    x_val = arrays["val_images"].astype(np.float32) / 255.0
    # The app windows each image to its own robust range; score the official split the same way.
    from medreview.imaging.decoding import decode_raster
    from medreview.imaging.display import training_array

    x_val = np.stack([training_array(decode_raster(_png(p)), config.input_size) for p in arrays["val_images"]])
    scores = classification_metrics(
        arrays["val_labels"].astype(int), predict_probabilities(app_model, x_val), list(CLASS_NAMES)
    )
    print(
        f"official validation split ({len(x_val)} images): ROC AUC {scores['roc_auc']:.4f}, "
        f"accuracy {scores['accuracy']:.4f}, sensitivity {scores['sensitivity']:.4f}, "
        f"specificity {scores['specificity']:.4f}"
    )
    print(f"work folder: {work}")


def _png(pixels: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    main()
