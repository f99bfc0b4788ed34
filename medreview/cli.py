"""``python -m medreview``: the same services as the pages, for scripts and servers.

Exit codes: 0 success; 1 the command failed (message on stderr); 2 some files were rejected
(ingest / import-folder; the per-file results say which and why) or ``reader-study analyze`` refused
its ratings (the one-line message says why); 128 + the signal number when
stopped by a signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). A command stopped so also stops the
processes it started (the worker and the Streamlit server of ``serve``, the worker of
``train --wait``) before it exits.

The CLI is for whoever operates the machine: it acts as the built-in "local" administrator (which
has no password and cannot log in to the web app), and its actions are audited under that name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from medreview.errors import MedreviewError
from medreview.store import Store
from medreview.team.roles import Actor

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


def _local_actor() -> Actor:
    """The built-in "local" administrator every command acts as (``reading.reads.LOCAL_ACTOR``),
    imported by the commands that act: it brings pandas and the reading services, which
    ``serve``, ``worker`` and ``users`` never need (a second of start-up for each)."""
    from medreview.reading.reads import LOCAL_ACTOR

    return LOCAL_ACTOR


def _print_results(results: list, as_json: bool) -> int:
    for result in results:
        if as_json:
            print(json.dumps({"file": result.file, "status": result.status, "reason": result.reason}))
        else:
            reason = f"  ({result.reason})" if result.reason else ""
            print(f"{result.status:9s} {result.file}{reason}")
    if not as_json:
        statuses = ("stored", "duplicate", "rejected", "skipped")
        counts = {status: sum(r.status == status for r in results) for status in statuses}
        print(", ".join(f"{n} {status}" for status, n in counts.items() if n or status != "skipped"), file=sys.stderr)
    return 2 if any(r.status == "rejected" for r in results) else 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from medreview.ingest import ingest_paths

    store = Store.open()
    return _print_results(ingest_paths(store, _local_actor(), [Path(p) for p in args.paths]), args.json)


def _cmd_import_folder(args: argparse.Namespace) -> int:
    from medreview.ingest.folders import import_class_folders

    store = Store.open()
    results = import_class_folders(store, Path(args.folder), evaluation_set=args.evaluation_set)
    code = _print_results(results, args.json)
    if args.evaluation_set is not None:
        _report_new_set(store, args.evaluation_set)
    if not args.json:  # and per class folder: results are named <class folder>/<file>
        for folder in sorted({result.file.split("/", 1)[0] for result in results if "/" in result.file}):
            mine = [result for result in results if result.file.startswith(folder + "/")]
            summary = ", ".join(
                f"{sum(r.status == status for r in mine)} {status}" for status in ("stored", "duplicate", "rejected")
            )
            print(f"{folder}/: {summary}", file=sys.stderr)
    return code


def _report_new_set(store: Store, name: str) -> None:
    """Say what the new evaluation set holds, and queue the evaluation of the existing versions on it."""
    from medreview.ml.evaluation import submit_evaluation
    from medreview.ml.registry import list_models
    from medreview.reading.evaluation_sets import find_evaluation_set

    made = find_evaluation_set(store, name)
    classes = ", ".join(f"{count} {label}" for label, count in made.class_counts.items())
    default = " (the default set)" if made.is_default else ""
    print(f"evaluation set '{made.name}'{default} frozen: {made.images} images ({classes})", file=sys.stderr)
    if list_models(store):
        job_id = submit_evaluation(store, _local_actor(), made.name)
        print(f"evaluation job {job_id} queued: every model version on '{made.name}'", file=sys.stderr)


# How long a stopped command waits for its children to end before killing them. The worker
# gives a running job medreview.jobs.WORKER_STOP_SECONDS (15 s) to stop; this leaves it time
# to mark the job and remove its liveness stamp.
CHILD_STOP_SECONDS = 25.0


class _Stopped(BaseException):
    """SIGTERM or SIGHUP arrived. A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` swallows it on its way up and every ``finally`` that stops a child runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


def _install_stop_handlers() -> dict[int, object]:
    """Make SIGTERM and SIGHUP unwind the command like Ctrl-C does; returns the handlers replaced.
    Without this, Python dies at once on them and the children of ``serve`` / ``train --wait``
    live on, reparented to PID 1."""
    replaced: dict[int, object] = {}
    if threading.current_thread() is not threading.main_thread():
        return replaced  # only the main thread may set handlers (main() called from a thread)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        # A signal ignored on purpose (nohup ignores SIGHUP) stays ignored.
        if signal.getsignal(signum) is signal.SIG_DFL:
            replaced[signum] = signal.signal(signum, _raise_stopped)
    return replaced


def _stop_children(children: list[subprocess.Popen], timeout: float = CHILD_STOP_SECONDS) -> None:
    """SIGTERM each running child, wait for all up to ``timeout`` seconds together, then kill
    those still running. A second Ctrl-C or SIGTERM meanwhile skips the rest of the wait."""
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    try:
        deadline = time.monotonic() + timeout
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        for child in children:
            if child.poll() is None:
                print(f"process {child.pid} did not stop within {timeout:g} s: killing it", file=sys.stderr)
                child.kill()
                child.wait()


def _start_worker() -> subprocess.Popen:
    # A session of its own, so that a Ctrl-C in the terminal does not reach it directly: this
    # command stops it deliberately (_stop_children), after the job it waits for, or on a signal.
    return subprocess.Popen([sys.executable, "-m", "medreview", "worker"], start_new_session=True)


def _wait_for_job(store: Store, job_id: int) -> int:
    """Wait for a job; start a worker for the wait if none is running. Returns an exit code."""
    from medreview.jobs import get_job, worker_alive

    worker = None
    try:
        last_epoch = 0
        checked_worker_at = 0.0
        while True:
            job = get_job(store, job_id)
            if worker is None and job.status == "queued" and time.monotonic() - checked_worker_at > 5:
                checked_worker_at = time.monotonic()
                if not worker_alive(store):
                    print("no worker is running: starting one for this job", file=sys.stderr)
                    worker = _start_worker()
            for epoch in job.progress.get("epochs", [])[last_epoch:]:
                print(
                    f"epoch {epoch['epoch']}: loss {epoch['loss']:.4f}  val_loss {epoch['val_loss']:.4f}  "
                    f"val_auc {epoch['val_auc']:.4f}  val_accuracy {epoch['val_accuracy']:.4f}",
                    file=sys.stderr,
                )
                last_epoch = epoch["epoch"]
            if job.status not in ("queued", "running"):
                break
            if worker is not None and worker.poll() is not None:
                print("the worker process exited unexpectedly", file=sys.stderr)
                return 1
            time.sleep(1.0)
    finally:
        # Also on Ctrl-C, SIGTERM or SIGHUP: the worker started for this wait ends with it
        # (SIGTERM: it stops its running job now rather than finishing it).
        if worker is not None:
            _stop_children([worker])
    if job.status != "succeeded":
        print(f"job {job_id} {job.status}: {job.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from medreview.jobs import get_job
    from medreview.ml.configs import get_config
    from medreview.ml.training.service import submit_training

    if args.architecture is not None:
        get_config(args.architecture)  # an unknown name: a one-line error that lists the configurations
    store = Store.open()
    params = {
        key: value
        for key, value in {
            "architecture": args.architecture,
            "input_size": args.input_size,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "target_sensitivity": args.target_sensitivity,
            "scope": args.scope,
            "prevalence": args.prevalence,
            "confirm_mixed_sizes": True if args.confirm_mixed_sizes else None,
        }.items()
        if value is not None
    }
    job_id = submit_training(store, _local_actor(), params)
    print(f"training run {job_id} queued", file=sys.stderr)
    if not args.wait:
        return 0
    code = _wait_for_job(store, job_id)
    if code != 0:
        return code
    result = get_job(store, job_id).result
    metrics = result["metrics"]
    activation = {"activated": result.get("activated"), "activation_reason": result.get("activation_reason")}
    if args.json:
        # A case run's figures count cases (split: cases and patients per part); "scope" says which.
        trained = {"scope": result.get("scope", "image"), "trained": result.get("trained")}
        print(
            json.dumps(
                {"model_version_id": result["model_version_id"], **trained, **_evaluation(metrics), **activation}
            )
        )
        return 0
    for line in _evaluation_lines(metrics):
        print(line, file=sys.stderr)
    if activation["activation_reason"]:
        print(f"model version {result['model_version_id']}: {activation['activation_reason']}", file=sys.stderr)
    print(json.dumps(metrics, indent=2))
    return 0


def _evaluation(metrics: dict) -> dict:
    """What `train --wait --json` prints: each part's headline figures (exactly SUMMARY_KEYS; ``test``
    null without a test part, and ``notes`` says why), and the choices made on validation."""
    from medreview.ml.training.metrics import summary

    return {
        "validation": summary(metrics["validation"]),
        "test": summary(metrics["test"]) if metrics.get("test") else None,
        "threshold": metrics["threshold"],
        "threshold_rule": metrics["threshold_rule"],
        "temperature": metrics["temperature"],
        # The calibrator chosen on validation (method, parameters, each candidate's NLL) and the
        # operating point (rule, threshold, expected sensitivity / specificity); older runs: None.
        "calibrator": metrics.get("calibrator"),
        "operating_point": metrics.get("operating_point"),
        "resampling": metrics.get("resampling"),
        "split": metrics["split"],
        "notes": metrics["notes"],
    }


def _evaluation_lines(metrics: dict) -> list[str]:
    """The evaluation in a few lines for a person: the held-out part first, then the notes."""
    lines = []
    for part in ("test", "validation"):
        block = metrics.get(part)
        if not block:  # only the test part can be missing
            lines.append(f"{part}: no held-out {part} part")
            continue
        lines.append(_figures_line(part, block))
    from medreview.ml.training.metrics import calibrator_of, describe_calibrator

    threshold = metrics["threshold"]
    lines.append(
        ("called by arg-max" if threshold is None else f"threshold {threshold:.3f} ({metrics['threshold_rule']})")
        + f", {describe_calibrator(calibrator_of(metrics))}, both chosen on validation"
    )
    if metrics.get("resampling"):
        lines.append(metrics["resampling"]["description"])
    lines.extend(f"note: {note}" for note in metrics["notes"])
    return lines


def _figures_line(title: str, block: dict) -> str:
    """One part's figures in a line: "test (6 images): ROC AUC 0.861 (95% interval ...), ..."."""
    auc, interval = block["roc_auc"], block["roc_auc_ci"]
    figures = ["ROC AUC n/a" if auc is None else f"ROC AUC {auc:.3f}"]
    if interval:
        figures[0] += f" (95% interval {interval[0]:.3f}-{interval[1]:.3f})"
    figures.append(f"accuracy {block['accuracy']:.3f}")
    for key in ("sensitivity", "specificity"):
        if block[key] is not None:
            figures.append(f"{key} {block[key]:.3f}")
    figures.append(f"ECE {block['ece']:.3f}")
    if block.get("ece_uncalibrated") is not None:
        figures[-1] += f" (before calibration {block['ece_uncalibrated']:.3f})"
    return f"{title} ({block['n']} images): {', '.join(figures)}"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """A model version's figures on an evaluation set: stored ones at once, else an evaluation job
    (a worker is started for it when none runs)."""
    from medreview.ml.evaluation import evaluation_of, submit_evaluation
    from medreview.ml.localization import localization_summary
    from medreview.ml.registry import get_model
    from medreview.ml.training.metrics import summary
    from medreview.reading.evaluation_sets import find_evaluation_set

    store = Store.open()
    version = get_model(store, args.model)
    evaluation_set = find_evaluation_set(store, args.set)
    figures = evaluation_of(store, version.id, evaluation_set.id)
    if figures is None or "error" in figures:
        job_id = submit_evaluation(store, _local_actor(), evaluation_set.name, [version.id])
        print(f"evaluation job {job_id} queued", file=sys.stderr)
        code = _wait_for_job(store, job_id)
        if code != 0:
            return code
        figures = evaluation_of(store, version.id, evaluation_set.id) or {"error": "no figures were stored"}
    if "error" in figures:
        raise MedreviewError(
            f"model version {version.id} could not be evaluated on '{evaluation_set.name}': {figures['error']}"
        )
    if args.json:
        document = {
            "model_version_id": version.id,
            "active": version.is_active,
            "evaluation_set": evaluation_set.name,
            "evaluation": summary(figures),
            # The reliability diagram's bins after calibration and of the raw probabilities before.
            "reliability": {"after": figures.get("calibration"), "before": figures.get("calibration_uncalibrated")},
            "outside_training_data": figures.get("outside_training_data"),
            "unscored": figures.get("unscored", {}),
            "notes": figures.get("notes", []),
            # Heat maps against reader boxes; None when this evaluation did not score them.
            "localization": localization_summary(figures),
        }
        print(json.dumps(document))
        return 0
    print(_figures_line(f"model version {version.id} on '{evaluation_set.name}'", figures))
    threshold = figures["threshold"]
    print("called by arg-max" if threshold is None else f"threshold {threshold:.3f} (chosen on validation)")
    if figures.get("outside_training_data"):
        print(f"{figures['outside_training_data']} images of the set lie outside the version's training data")
    for reason, count in figures.get("unscored", {}).items():
        print(f"left out: {count} images ({reason})")
    localization = localization_summary(figures)
    if localization and localization["n"]:
        print(
            f"where readers look ({localization['n']} images with boxes): pointing game "
            f"{localization['pointing_game']:.2f}, mass in boxes {localization['mass_in_boxes']:.2f}"
        )
    for note in figures.get("notes", []):
        print(f"note: {note}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from medreview.jobs import get_job
    from medreview.ml.prediction import submit_predictions

    store = Store.open()
    scope = "all" if args.all else "unlabelled"
    job_id = submit_predictions(store, _local_actor(), scope=scope)
    print(f"prediction job {job_id} queued ({scope} images)", file=sys.stderr)
    code = _wait_for_job(store, job_id)
    if code == 0:
        result = get_job(store, job_id).result
        print(f"{result['predicted']} images predicted with model version {result['model_version_id']}")
        for line in result.get("skipped", []):
            print(f"skipped {line}", file=sys.stderr)
    return code


def _cmd_export(args: argparse.Namespace) -> int:
    from medreview.reading.exchange import write_export

    if args.kind in ("sr", "kos"):
        return _export_dicom(args)
    if args.kind == "settings":  # the project's settings and label schema, one JSON document
        from medreview.reading.project_settings import project_settings_bytes

        Path(args.output).write_bytes(project_settings_bytes(Store.open(), _local_actor()))
        print(f"project settings written to {args.output}", file=sys.stderr)
        return 0
    rows = write_export(
        Store.open(), _local_actor(), args.kind, Path(args.output), args.format, original_names=args.original_names
    )
    print(f"{rows} rows written to {args.output}", file=sys.stderr)
    return 0


def _export_dicom(args: argparse.Namespace) -> int:
    """``export sr|kos -o DIR``: one DICOM file per case and source (or study), a line per case."""
    from medreview.reading.dicomout.documents import SOURCES, kos_objects, sr_objects, write_objects

    store = Store.open()
    if args.kind == "sr":
        sources = [source for source in SOURCES if getattr(args, source)] or list(SOURCES)
        if args.model is not None and "predictions" not in sources:
            sources.append("predictions")
        objects, results = sr_objects(store, _local_actor(), sources, model_id=args.model)
    else:
        objects, results = kos_objects(store, _local_actor(), args.set)
    for result in results:
        detail = result.sop_instance_uid or result.reason
        print(f"{result.status:8s} {result.source} {result.case}  {detail}")
    count = write_objects(store, _local_actor(), objects, Path(args.output), kind=args.kind)
    print(f"{count} DICOM objects written to {args.output}", file=sys.stderr)
    return 0


def _cmd_pacs_send(args: argparse.Namespace) -> int:
    from medreview.reading.dicomout.send import send_folder

    results = send_folder(Store.open(), _local_actor(), _pacs_client(args), Path(args.folder))
    for result in results:
        reason = f": {result.reason}" if result.reason else ""
        print(f"{result.status}{reason}  {result.file}")
    return 2 if any(result.status == "refused" for result in results) else 0


def _cmd_assign(args: argparse.Namespace) -> int:
    from medreview.reading.catalog import image_table
    from medreview.reading.reads import unlabelled_image_ids
    from medreview.reading.review import assign

    store = Store.open()
    if args.unlabelled:
        image_ids = unlabelled_image_ids(store)
    else:
        image_ids = [int(i) for i in image_table(store)["image_id"]]
    if args.limit:
        image_ids = image_ids[: args.limit]
    made = assign(store, _local_actor(), image_ids, args.readers, args.per_image, scope=args.scope)
    if args.scope == "image":
        print(f"{made} new assignments over {len(image_ids)} images")
    else:
        print(f"{made} new assignments over the {args.scope} cases of {len(image_ids)} images")
    return 0


def _cmd_import_labels(args: argparse.Namespace) -> int:
    from medreview.reading.exchange import import_labels

    counts = import_labels(Store.open(), _local_actor(), Path(args.file))
    print(
        f"{counts['reads']} reads and {counts['final_labels']} final labels imported; "
        f"{counts['images_missing']} rows name images this store does not hold"
    )
    return 0


def _cmd_reader_study(args: argparse.Namespace) -> int:
    """``reader-study analyze``: the MRMC analysis of a long ratings CSV (no store needed);
    ``export-ratings STUDY -o FILE`` and ``results STUDY [--json] [--png FILE]`` of a stored study."""
    from medreview.reading.mrmc import RatingsError, analyze, read_ratings_csv

    if args.action != "analyze":
        return _stored_reader_study(args)
    try:
        result = analyze(read_ratings_csv(args.ratings), args.covariance)
    except RatingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_json()))
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        print(result.as_text())
    return 0


def _cmd_import_settings(args: argparse.Namespace) -> int:
    from medreview.reading.project_settings import import_project_settings

    changed = import_project_settings(Store.open(), _local_actor(), Path(args.file).read_bytes())
    print(
        f"{len(changed['settings'])} settings changed ({', '.join(changed['settings']) or 'none'}); "
        f"label classes: {', '.join(changed['label_classes']) or 'unchanged'}"
    )
    return 0


def _stored_reader_study(args: argparse.Namespace) -> int:
    from medreview.reading import studies

    store = Store.open()
    actor = _local_actor()
    try:
        study = studies.find_study(store, actor, args.ratings)
        if args.action == "export-ratings":
            if not args.output:
                print("error: export-ratings needs -o FILE", file=sys.stderr)
                return 2
            content = studies.ratings_csv(store, actor, study.id)
            Path(args.output).write_bytes(content)
            rows = content.count(b"\n") - 1
            print(f"{rows} ratings of '{study.name}' written to {args.output}")
            return 0
        content, png = studies.export_results(store, actor, study.id)
        if args.png:
            Path(args.png).write_bytes(png)
        if args.json:
            print(content.decode())
        else:
            results = studies.study_results(store, actor, study.id)
            print(results.analysis_text or "\n".join(results.notes))
    except MedreviewError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


def _password_from_env_or_prompt() -> str:
    password = os.environ.get("MEDREVIEW_PASSWORD")
    if password:
        return password
    import getpass

    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat: "):
        raise MedreviewError("the two passwords differ")
    return password


def _cmd_users(args: argparse.Namespace) -> int:
    from medreview.team import accounts
    from medreview.team.roles import SYSTEM

    store = Store.open()
    if args.action == "list":
        for user in accounts.list_users(store, SYSTEM):
            state = "active" if user["active"] else "inactive"
            pending = " (must choose a new password)" if user["must_change_password"] else ""
            print(f"{user['username']:24s} {user['role']:10s} {state}{pending}")
        return 0
    if not args.username:
        raise MedreviewError(f"users {args.action} needs a user name")
    if args.action == "add":
        password = _password_from_env_or_prompt()
        if accounts.needs_first_admin(store):
            accounts.create_first_admin(store, args.username, password)
            print(f"administrator {args.username} created", file=sys.stderr)
        else:
            accounts.create_user(store, SYSTEM, args.username, password, args.role, temporary=args.temporary)
            print(f"{args.role} {args.username} created", file=sys.stderr)
    elif args.action == "set-role":
        accounts.set_role(store, SYSTEM, args.username, args.role)
    elif args.action == "password":
        accounts.change_password(store, SYSTEM, args.username, _password_from_env_or_prompt(), temporary=args.temporary)
    elif args.action in ("deactivate", "activate"):
        accounts.set_active(store, SYSTEM, args.username, args.action == "activate")
    return 0


def _pacs_client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from medreview.ingest.dicomweb import DicomWebClient

    # The password comes from the environment, never the command line (it would land in shell
    # history and the process list).
    return DicomWebClient(args.url, username=args.user, password=os.environ.get("MEDREVIEW_PACS_PASSWORD"))


def _cmd_pacs_search(args: argparse.Namespace) -> int:
    studies = _pacs_client(args).search_studies(
        patient_id=args.patient_id, patient_name=args.patient_name, study_date=args.date, modality=args.modality
    )
    for study in studies:
        print(
            f"{study.study_uid}\t{study.patient_id}\t{study.study_date}\t{study.modalities}\t"
            f"{study.instance_count if study.instance_count is not None else '?'} images\t{study.description}"
        )
    print(f"{len(studies)} studies", file=sys.stderr)
    return 0


def _cmd_pacs_import(args: argparse.Namespace) -> int:
    from medreview.ingest.dicomweb import import_study

    store = Store.open()
    client = _pacs_client(args)
    results = []
    for study_uid in args.study_uids:
        results.extend(import_study(store, _local_actor(), client, study_uid))
    return _print_results(results, args.json)


def _cmd_demo(_: argparse.Namespace) -> int:
    from medreview.ingest.demo import load_demo_data

    return _print_results(load_demo_data(Store.open(), _local_actor()), as_json=False)


def _cmd_db(args: argparse.Namespace) -> int:
    from medreview.config import get_settings
    from medreview.store import schema
    from medreview.store.db import Database

    database = Database(get_settings().database_url)
    try:
        if args.action == "upgrade":
            backup = schema.upgrade(database.engine, database.sqlite_path)
            if backup:
                print(f"backup of the database before the upgrade: {backup}", file=sys.stderr)
        print(f"schema revision: {schema.current_revision(database.engine)} (newest: {schema.head_revision()})")
    finally:
        database.dispose()
    return 0


def _cmd_worker(_: argparse.Namespace) -> int:
    from medreview.jobs import run_worker
    from medreview.ml.runners import RUNNERS

    # Once the consumer runs, huey handles SIGINT / SIGTERM / SIGHUP itself; run_worker returns on
    # SIGINT and SIGTERM after stopping its job and removing the worker's liveness stamp. Before
    # that (importing the runners takes a second or two; TensorFlow waits for the first training)
    # main's handlers apply.
    run_worker(RUNNERS)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    """Start the worker and the Streamlit app; stop both when the app stops or this command is
    stopped (Ctrl-C, SIGTERM, SIGHUP)."""
    Store.open()  # create the data dir and schema once, before two processes race to do it
    # asgi.py: app.py served with the routes beside its pages (the case viewer's frames).
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "asgi.py"), "--server.port", str(args.port)]
    if args.headless:
        command += ["--server.headless", "true"]
    children: list[subprocess.Popen] = []
    try:
        children.append(_start_worker())
        app = subprocess.Popen(command)
        children.append(app)
        return app.wait()
    finally:
        # The app first: no new job submitted to a worker that is going away.
        _stop_children(children[::-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medreview", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="store DICOM / PNG / JPEG files, folders or zip archives")
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--json", action="store_true", help="one JSON object per file: file, status, reason")
    ingest.set_defaults(handler=_cmd_ingest)

    folder = commands.add_parser("import-folder", help="ingest DIR/<class>/* and label each image with <class>")
    folder.add_argument("folder")
    folder.add_argument("--json", action="store_true")
    folder.add_argument(
        "--evaluation-set",
        metavar="NAME",
        help="freeze the imported images as a new evaluation set of this name (training never uses them)",
    )
    folder.set_defaults(handler=_cmd_import_folder)

    train = commands.add_parser("train", help="train a model on the labelled images")
    train.add_argument("--wait", action="store_true", help="wait for the run and print its metrics")
    train.add_argument(
        "--json",
        action="store_true",
        help="with --wait: print one JSON object, the validation and held-out test figures and the notes",
    )
    train.add_argument("--architecture", help="the model configuration (default small_cnn; a wrong name lists them)")
    train.add_argument("--input-size", type=int)
    train.add_argument(
        "--scope",
        choices=("study", "series", "image"),
        help="train a study- or series-level case model or the image model (default: study, then series, when "
        "their classes have enough labelled cases, else image); a scope no class has is refused",
    )
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument(
        "--target-sensitivity",
        type=float,
        help="choose the threshold on validation for this sensitivity (0-1) instead of by Youden's J",
    )
    train.add_argument(
        "--prevalence",
        help="the expected share (0-1) of the second class where the model will read, or 'estimate' (by EM "
        "from the unlabelled images): the calibrated probability is adjusted to it and called at 0.5",
    )
    train.add_argument(
        "--confirm-mixed-sizes",
        action="store_true",
        help="let the run be made active even though its training images differ in size by more than 8x",
    )
    train.set_defaults(handler=_cmd_train)

    evaluate = commands.add_parser(
        "evaluate", help="a model version's figures on an evaluation set (evaluates it first when needed)"
    )
    evaluate.add_argument("--model", type=int, required=True, metavar="N", help="the model version")
    evaluate.add_argument("--set", metavar="NAME", help="the evaluation set (default: the default set)")
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: the figures as train --wait --json prints a part, and the notes",
    )
    evaluate.set_defaults(handler=_cmd_evaluate)

    predict = commands.add_parser("predict", help="run the active model on images (waits for the job)")
    scope = predict.add_mutually_exclusive_group()
    scope.add_argument("--all", action="store_true", help="every image")
    scope.add_argument("--unlabelled", action="store_true", help="only unlabelled images (the default)")
    predict.set_defaults(handler=_cmd_predict)

    export = commands.add_parser(
        "export",
        help="write final labels, reads, predictions or boxes (COCO) to a file; DICOM SR or KOS objects to a folder",
    )
    export.add_argument("kind", choices=("labels", "reads", "predictions", "coco", "sr", "kos", "settings"))
    for source, what in (("reads", "readers' reads"), ("final", "final labels"), ("predictions", "predictions")):
        export.add_argument(f"--{source}", action="store_true", help=f"sr: the {what} (default: all three)")
    export.add_argument("--model", type=int, metavar="N", help="sr: model version N's predictions (default: active)")
    export.add_argument("--set", metavar="NAME", help="kos: the evaluation set (default: the default set)")
    export.add_argument("--format", default="csv", choices=("csv", "json"))
    export.add_argument("-o", "--output", required=True)
    export.add_argument(
        "--original-names",
        action="store_true",
        help="add each image's upload name (identifying; from the pseudonym map; audited)",
    )
    export.set_defaults(handler=_cmd_export)

    assign_work = commands.add_parser("assign", help="put images on readers' personal worklists")
    assign_work.add_argument("readers", nargs="+")
    assign_work.add_argument("--per-image", type=int, default=1, help="readers per image (default 1)")
    assign_work.add_argument("--unlabelled", action="store_true", help="only unlabelled images")
    assign_work.add_argument("--limit", type=int, help="at most this many images, oldest first")
    assign_work.add_argument(
        "--scope",
        choices=("study", "series", "image"),
        default="image",
        help="assign the studies or series holding the images (one case each) instead of the images",
    )
    assign_work.set_defaults(handler=_cmd_assign)

    import_labels = commands.add_parser("import-labels", help="re-create reads from a JSON 'reads' export")
    import_labels.add_argument("file")
    import_labels.set_defaults(handler=_cmd_import_labels)

    import_settings = commands.add_parser(
        "import-settings", help="apply an 'export settings' file: label schema, hanging protocols, project settings"
    )
    import_settings.add_argument("file")
    import_settings.set_defaults(handler=_cmd_import_settings)

    reader_study = commands.add_parser(
        "reader-study", help="analyze a reader study's ratings CSV (MRMC: Obuchowski-Rockette, Hillis ddf)"
    )
    reader_study.add_argument("action", choices=("analyze", "export-ratings", "results"))
    reader_study.add_argument(
        "ratings", help="analyze: long CSV modality,reader,case,truth,rating (other columns ignored); else a study"
    )
    reader_study.add_argument("-o", "--output", help="export-ratings: the CSV file to write")
    reader_study.add_argument("--png", help="results: also write the ROC plot with the readers' points here")
    reader_study.add_argument("--covariance", choices=("delong", "jackknife"), default="delong")
    reader_study.add_argument("--json", action="store_true", help="print one JSON object")
    reader_study.set_defaults(handler=_cmd_reader_study)

    users = commands.add_parser("users", help="manage accounts (the password is read from MEDREVIEW_PASSWORD or asked)")
    users.add_argument("action", choices=("list", "add", "set-role", "password", "deactivate", "activate"))
    users.add_argument("username", nargs="?")
    users.add_argument("--role", default="annotator", choices=("annotator", "reviewer", "admin"))
    # The operator's password is the user's own unless said otherwise (on the Team page an admin's
    # always is temporary).
    users.add_argument(
        "--temporary",
        action="store_true",
        help="add / password: the user must choose their own password at the next sign-in",
    )
    users.set_defaults(handler=_cmd_users)

    pacs_search = commands.add_parser("pacs-search", help="search a PACS over DICOMweb (QIDO-RS)")
    pacs_import = commands.add_parser("pacs-import", help="retrieve studies from a PACS (WADO-RS) into the store")
    pacs_send = commands.add_parser("pacs-send", help="store the DICOM objects of export sr/kos on a PACS (STOW-RS)")
    for pacs in (pacs_search, pacs_import, pacs_send):
        pacs.add_argument("url", help="DICOMweb root, e.g. http://pacs:8042/dicom-web")
        pacs.add_argument("--user", help="user name; the password is read from MEDREVIEW_PACS_PASSWORD")
    pacs_search.add_argument("--patient-id", default="")
    pacs_search.add_argument("--patient-name", default="")
    pacs_search.add_argument("--date", default="", help="YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    pacs_search.add_argument("--modality", default="")
    pacs_search.set_defaults(handler=_cmd_pacs_search)
    pacs_import.add_argument("study_uids", nargs="+")
    pacs_import.add_argument("--json", action="store_true")
    pacs_import.set_defaults(handler=_cmd_pacs_import)
    pacs_send.add_argument("folder", help="the folder export sr / export kos wrote")
    pacs_send.set_defaults(handler=_cmd_pacs_send)

    db = commands.add_parser("db", help="the database schema: show its revision or upgrade it")
    db.add_argument("action", choices=["upgrade", "revision"])
    db.set_defaults(handler=_cmd_db)
    commands.add_parser("demo", help="load generated demo images (labelled and unlabelled)").set_defaults(
        handler=_cmd_demo
    )
    commands.add_parser("worker", help="run the background worker (training, predictions)").set_defaults(
        handler=_cmd_worker
    )
    serve = commands.add_parser("serve", help="start the worker and the web app")
    serve.add_argument("--port", type=int, default=int(os.environ.get("MEDREVIEW_PORT", "8501")))
    serve.add_argument("--headless", action="store_true")
    serve.set_defaults(handler=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    replaced = _install_stop_handlers()
    try:
        return int(args.handler(args) or 0)
    except MedreviewError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except _Stopped as stopped:
        return 128 + stopped.signum
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
