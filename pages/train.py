import pandas as pd
import streamlit as st

from medreview.errors import TrainingError
from medreview.jobs import cancel_job, job_numbers, list_jobs, worker_alive
from medreview.ml.configs import CONFIGS, DEFAULT_ARCHITECTURE, AttentionMILConfig
from medreview.ml.domain import domain_summary
from medreview.ml.evaluation import (
    EVALUATION_JOB,
    NOT_WORSE_TOLERANCE,
    comparison_table,
    freeze_evaluation_set,
    sample_evaluation_images,
    submit_evaluation,
)
from medreview.ml.localization import LOCALIZATION_CAP, localization_summary
from medreview.ml.prediction import case_scope
from medreview.ml.registry import activate_model, list_models
from medreview.ml.training.case_table import CASE_SCOPES, DEFAULT_ENCODER, case_training_table, training_scope
from medreview.ml.training.dataset import training_label_counts
from medreview.ml.training.metrics import (
    calibrator_of,
    describe_calibrator,
    reliability_diagram_png,
    roc_curve_png,
    roc_curves_png,
)
from medreview.ml.training.service import TRAINING_JOB, submit_training
from medreview.ml.training.split import MIN_TEST_PATIENTS_PER_CLASS
from medreview.reading.evaluation_sets import list_evaluation_sets, set_default_evaluation_set
from medreview.reading.reads import current_labels
from medreview.reading.schema import label_class_scopes
from ui.session import attempt, get_store, session_actor, succeeded
from ui.text import plain, spreadsheet_safe

store = get_store()
actor = session_actor("admin")
st.title("Train")

# What a run started now learns from: evaluation-set images (and their patients) never take part.
class_scopes = set(label_class_scopes(store, include_retired=True).values())
case_levels = [level for level in CASE_SCOPES if level in class_scopes]
class_counts, held_out = training_label_counts(store)
held_out_note = f" ({held_out} more are in evaluation sets, which training never uses)" if held_out else ""
# Which model a run trains: a case model when study- or series-scoped classes have enough labelled
# cases (medreview.ml.training.case_table), else the image model; a project with both picks below.
case_notes: list[str] = []
case_ready = False
for level in case_levels:
    try:
        cases_table, case_classes = case_training_table(store, level)
    except TrainingError as error:
        case_notes.append(f"No {level}-level case model yet: {plain(error)}")
        continue
    case_ready = True
    counts = cases_table["label"].value_counts()
    case_notes.append(
        f"Labelled {level} cases per class that a case model trains on: "
        + ", ".join(f"**{plain(name)}** {int(counts[name])}" for name in case_classes)
    )
if class_counts:
    st.markdown(
        "Labelled images per class that training uses: "
        + ", ".join(f"**{plain(name)}** {count}" for name, count in class_counts.items())
        + held_out_note
    )
elif not case_ready:
    st.info(f"No labelled images to train on yet: label some on the Label page first.{held_out_note}")
for note in case_notes:
    st.markdown(note)
level_choice = None
trains = "image"
if case_levels:
    levels = ["automatic", *case_levels, "image"]
    level_choice = st.radio(
        "Train",
        levels,
        horizontal=True,
        key="train_level",
        format_func=lambda level: {
            "automatic": "Automatic",
            "image": "Image model",
            "study": "Study-level case model",
            "series": "Series-level case model",
        }[level],
        help="A case model sees every slice of a study or series (attention over the slices, the architecture "
        "below encoding each slice) and learns the study or series labels; the image model learns image labels. "
        "Automatic: a case model when its classes have enough labelled cases, else the image model.",
    )
    try:
        trains = training_scope(store, scope=None if level_choice == "automatic" else level_choice)
        st.caption(
            "A run now trains "
            + ("**an image model**" if trains == "image" else f"**a {trains}-level case model**")
            + "."
        )
    except TrainingError as error:
        st.caption(f"Nothing to train at that level yet: {plain(error)}")

if not worker_alive(store):
    st.warning(
        "No worker is running, so training will wait in the queue. Start one with `make run` "
        "or `python -m medreview worker`."
    )

with st.form("train_form"):
    architecture_column, epochs_column, size_column, seed_column, sensitivity_column = st.columns(5)
    if trains == "image":
        architecture = architecture_column.selectbox(
            "Architecture",
            list(CONFIGS),
            index=list(CONFIGS).index(DEFAULT_ARCHITECTURE),
            format_func=lambda name: name.replace("_", " "),
            help="\n\n".join(f"**{name}**: {config.description}" for name, config in CONFIGS.items()),
            key="train_architecture",
        )
    else:
        # A case model: attention over the slices, each slice encoded by one of these CNNs.
        encoders = list(AttentionMILConfig.encoders)
        architecture = architecture_column.selectbox(
            "Slice encoder",
            encoders,
            index=encoders.index(DEFAULT_ENCODER),
            format_func=lambda name: name.replace("_", " "),
            help=f"{AttentionMILConfig.description} Each slice is encoded by this CNN.",
            key="train_encoder",
        )
    epochs = epochs_column.number_input("Epochs", 1, 500, 10, key="train_epochs")
    size = size_column.number_input(
        "Resolution (px, 0 = automatic)",
        0,
        512,
        0,
        step=4,
        key="train_size",
        help="Automatic: never upsample small images; cap large ones (chest films train at 128 px).",
    )
    seed = seed_column.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
    target_sensitivity = sensitivity_column.number_input(
        "Target sensitivity (0 = Youden)",
        0.0,
        1.0,
        0.0,
        step=0.05,
        key="train_target_sensitivity",
        help="Two classes: the threshold is chosen on validation to maximise Youden's J (sensitivity + "
        "specificity - 1), or, when set here, as the most specific one that reaches this sensitivity.",
    )
    prevalence_column, estimate_column, confirm_column = st.columns(3)
    prevalence = prevalence_column.number_input(
        "Expected prevalence (0 = use the rule above)",
        0.0,
        0.99,
        0.0,
        step=0.05,
        key="train_prevalence",
        help="Two classes: the expected share of the second class where the model will read. The calibrated "
        "probability is adjusted to it (Bayes' rule) and an image is called at 0.5: the fewest expected errors there.",
    )
    estimate = estimate_column.checkbox(
        "Estimate the prevalence from the unlabelled images",
        key="train_estimate_prevalence",
        help="EM on the calibrated probabilities of the project's unlabelled images (Saerens et al. 2002).",
    )
    confirm_mixed = confirm_column.checkbox(
        "Confirm mixed image sizes",
        key="train_confirm_mixed_sizes",
        help="A run whose training images differ in size by more than 8x is not made active by itself unless "
        "this is ticked.",
    )
    st.caption(
        f"Images are split by patient into training, validation and, when every class has at least "
        f"{MIN_TEST_PATIENTS_PER_CLASS} patients, a held-out test part that takes part in no choice."
    )
    if st.form_submit_button("Train", type="primary"):
        params = {"architecture": architecture, "epochs": int(epochs), "seed": int(seed)}
        if size:
            params["input_size"] = int(size)
        if target_sensitivity:
            params["target_sensitivity"] = float(target_sensitivity)
        if estimate:
            params["prevalence"] = "estimate"
        elif prevalence:
            params["prevalence"] = float(prevalence)
        if confirm_mixed:
            params["confirm_mixed_sizes"] = True
        if level_choice not in (None, "automatic"):
            params["scope"] = level_choice
        job_id = attempt(lambda: submit_training(store, actor, params))
        if job_id is not None:
            st.success(f"Training run {job_numbers(store, TRAINING_JOB)[job_id]} queued.")


def epoch_table(job) -> pd.DataFrame:
    return pd.DataFrame(job.progress.get("epochs", []))


@st.fragment(run_every=2)
def runs_ui() -> None:
    # A fragment reruns on its own, without the page's check above: check the user again (role,
    # active account, session age, from the database), so a demoted or expired admin's open
    # panel can no longer cancel a run.
    panel_actor = session_actor("admin")
    jobs = list_jobs(store, kind=TRAINING_JOB, limit=10)
    if not jobs:
        return
    run_numbers = job_numbers(store, TRAINING_JOB)
    latest = jobs[0]
    st.subheader(f"Run {run_numbers[latest.id]}: {latest.status}")
    progress = latest.progress
    epochs = epoch_table(latest)
    total = progress.get("total_epochs") or latest.params.get("epochs") or 1
    if latest.status in ("queued", "running"):
        st.progress(
            min(len(epochs) / total, 1.0),
            text=f"{progress.get('stage', 'waiting for the worker')} · epoch {len(epochs)}/{total}",
        )
        if st.button("Cancel run", key=f"train_cancel_{latest.id}"):
            attempt(lambda: cancel_job(store, panel_actor, latest.id))
    if latest.status not in ("queued", "running") and st.session_state.get("train_seen_finish") != latest.id:
        # The run just ended: redraw the whole page so the model list below shows the new version.
        st.session_state["train_seen_finish"] = latest.id
        st.rerun(scope="app")
    if latest.status == "failed":
        st.error(f"Training failed: {plain(latest.error)}")
    if latest.status == "cancelled":
        st.info(f"Cancelled: {plain(latest.error)}")
    if progress.get("scope"):
        st.caption(f"A {progress['scope']}-level case model at {progress['input_size']} px: cases split by patient")
    elif "input_size" in progress:
        test_images = progress.get("test_images")
        test_part = f" / {test_images} held-out test" if test_images else " (no held-out test part)"
        st.caption(
            f"{progress.get('train_images')} training / {progress.get('validation_images')} validation"
            f"{test_part} images (split by patient) at {progress['input_size']} px"
        )
    if len(epochs):
        loss_column, auc_column = st.columns(2)
        loss_column.line_chart(epochs.set_index("epoch")[["loss", "val_loss"]], color=CHART_COLOURS)
        auc_column.line_chart(epochs.set_index("epoch")[["val_auc", "val_accuracy"]], color=CHART_COLOURS)
    metrics = latest.result.get("metrics") if latest.status == "succeeded" else None
    if latest.status == "succeeded" and latest.result.get("trained"):
        st.markdown(f"This run trained **{plain(latest.result['trained'])}**.")
    if metrics:
        show_metrics(metrics)
    with st.expander("Earlier runs"):
        st.dataframe(
            spreadsheet_safe(
                pd.DataFrame(
                    [
                        {
                            "run": run_numbers[job.id],
                            "status": job.status,
                            "started": job.started_at,
                            "epochs": len(job.progress.get("epochs", [])),
                            "ROC AUC (95% interval)": headline_auc(job.result.get("metrics")),
                            "error": job.error,
                        }
                        for job in jobs
                    ]
                )
            ),
            hide_index=True,
        )


# Distinct hues (not two blues) that read on the dark theme; the same pair in both charts.
CHART_COLOURS = ["#4FC3F7", "#FFB74D"]


def format_auc(block: dict) -> str:
    auc, interval = block.get("roc_auc"), block.get("roc_auc_ci")
    if auc is None:
        return "n/a"
    if interval:
        return f"{auc:.2f} ({interval[0]:.2f}–{interval[1]:.2f})"
    return f"{auc:.3f} (no interval)"


def format_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def show_metrics(metrics: dict) -> None:
    if "validation" not in metrics:
        show_earlier_format(metrics)
        return
    part = metrics["headline"]
    block = metrics[part]
    counts = ", ".join(
        f"{count} {name}" for name, count in zip(block["class_names"], block["class_counts"], strict=True)
    )
    if part == "test":
        st.markdown(
            f"**Held-out test part**: {block['n']} images ({plain(counts)}) of patients that took part in no "
            "choice (best epoch, threshold, calibration)."
        )
    else:
        st.markdown(f"**Validation part**: {block['n']} images ({plain(counts)}); there is no held-out test part.")
    for note in metrics.get("notes", []):
        st.warning(plain(note))
    binary = block.get("sensitivity") is not None or block.get("specificity") is not None
    cells = st.columns([2, 1, 1, 1, 1])
    cells[0].metric(
        "ROC AUC (95% interval)",
        format_auc(block),
        help="Percentile bootstrap over 1000 resamples, widened to Newcombe's score interval where that is wider.",
    )
    cells[1].metric("Accuracy", format_number(block.get("accuracy")))
    cells[2].metric("Sensitivity", format_number(block.get("sensitivity")) if binary else "n/a")
    cells[3].metric("Specificity", format_number(block.get("specificity")) if binary else "n/a")
    before = block.get("ece_uncalibrated")
    cells[4].metric(
        "ECE",
        format_number(block.get("ece")),
        delta=None if before is None else f"{block['ece'] - before:+.3f} from {before:.3f} uncalibrated",
        delta_color="inverse",
        help="Expected calibration error over 10 equal-width bins: 0 when the probabilities mean what they say.",
    )
    st.caption(plain(operating_point(metrics)))
    if metrics.get("resampling"):
        st.caption(plain(metrics["resampling"]["description"]))
    matrix_column, roc_column, reliability_column = st.columns(3)
    names = block["class_names"]
    matrix_column.write("Confusion matrix (rows: label, columns: prediction)")
    matrix_column.dataframe(spreadsheet_safe(pd.DataFrame(block["confusion_matrix"], index=names, columns=names)))
    if block.get("roc_curve"):
        roc_column.image(roc_curve_png(block), width=360, caption=f"ROC curve ({part})")
    if block.get("calibration") and any(block["calibration"]["bin_count"]):
        reliability_column.image(reliability_diagram_png(block), width=360, caption=f"Reliability diagram ({part})")
    rows = [("validation", metrics["validation"])] + ([("test", metrics["test"])] if metrics.get("test") else [])
    st.dataframe(
        spreadsheet_safe(
            pd.DataFrame(
                [
                    {
                        "part": name,
                        "images": part_block["n"],
                        "ROC AUC (95% interval)": format_auc(part_block),
                        "accuracy": part_block.get("accuracy"),
                        "sensitivity": part_block.get("sensitivity"),
                        "specificity": part_block.get("specificity"),
                        "ECE": part_block.get("ece"),
                    }
                    for name, part_block in rows
                ]
            )
        ),
        hide_index=True,
        column_config={
            column: st.column_config.NumberColumn(format="%.3f")
            for column in ("accuracy", "sensitivity", "specificity", "ECE")
        },
    )


def operating_point(metrics: dict) -> str:
    """The threshold and calibration the model is used with, in words (shown through plain())."""
    # The prevalence adjustment is said once, with the rule, not again with the calibrator.
    calibrator = {key: value for key, value in calibrator_of(metrics).items() if key != "prior_shift"}
    temperature = f"probabilities calibrated by {describe_calibrator(calibrator)}, chosen on validation"
    threshold = metrics.get("threshold")
    if threshold is None:
        return f"Each image is called its most probable class; {temperature}."
    block = metrics["validation"]
    positive = block["class_names"][block["positive_class"]]
    point = metrics.get("operating_point")
    if point:
        expected = (
            f"expected sensitivity {format_number(point['expected_sensitivity'])}, specificity "
            f"{format_number(point['expected_specificity'])} (on validation)"
        )
        if point.get("expected_accuracy") is not None:
            expected += f", accuracy {point['expected_accuracy']:.3f} at that prevalence"
        return (
            f"Called '{positive}' at a probability of {threshold:.3f} or more ({point['description']}); "
            f"{expected}; {temperature}."
        )
    if metrics.get("threshold_rule") == "target sensitivity":
        rule = (
            f"the most specific threshold with sensitivity at least {metrics['target_sensitivity']:.2f} on validation"
        )
    else:
        rule = "Youden's J on validation"
    return f"Called '{positive}' at a probability of {threshold:.3f} or more ({rule}); {temperature}."


def show_earlier_format(metrics: dict) -> None:
    """A run from before the held-out test part: validation figures at 0.5, without an interval."""
    st.warning(
        "This run was evaluated before runs had a held-out test part, a confidence interval and a "
        "calibrated threshold: its figures are on validation only. Train again for an honest evaluation."
    )
    names = metrics["class_names"]
    cells = st.columns(4)
    for cell, (title, key) in zip(
        cells,
        [("ROC AUC (validation, no interval)", "roc_auc"), ("Accuracy", "accuracy"), ("Sensitivity", "sensitivity"),
         ("Specificity", "specificity")],
        strict=True,
    ):  # fmt: skip
        cell.metric(title, format_number(metrics.get(key)))
    matrix_column, roc_column = st.columns(2)
    matrix_column.write("Confusion matrix (rows: label, columns: prediction)")
    matrix_column.dataframe(spreadsheet_safe(pd.DataFrame(metrics["confusion_matrix"], index=names, columns=names)))
    if metrics.get("roc_curve"):
        roc_column.image(roc_curve_png(metrics), width=360)


def headline_auc(metrics: dict | None) -> str | None:
    """The AUC of a run's headline part with its interval, for the run and model tables."""
    if not metrics:
        return None
    if "validation" not in metrics:
        return None if metrics.get("roc_auc") is None else f"{metrics['roc_auc']:.3f} (validation, no interval)"
    return f"{format_auc(metrics[metrics['headline']])} {metrics['headline']}"


runs_ui()

st.subheader("Model versions")
models = list_models(store)
if not models:
    st.caption("No models yet.")
else:
    run_numbers = job_numbers(store, TRAINING_JOB)
    st.dataframe(
        spreadsheet_safe(
            pd.DataFrame(
                [
                    {
                        "version": m.id,
                        "active": m.is_active,
                        "run": run_numbers.get(m.job_id),
                        "level": case_scope(m) or "image",
                        "architecture": m.architecture,
                        "px": m.input_size,
                        "classes": ", ".join(m.class_names),
                        "ROC AUC (95% interval)": headline_auc(m.metrics),
                        "threshold": m.metrics.get("threshold"),
                        "trained on": domain_summary(m.domain),
                        "activation": m.activation_reason,
                        "created": m.created_at,
                    }
                    for m in models
                ]
            )
        ),
        hide_index=True,
        key="train_models",
    )
    active_id = next((m.id for m in models if m.is_active), None)
    # Keyed by the active version: when another version becomes active (a run just ended, another
    # admin), the selector starts again from it instead of keeping an older choice, so the button
    # below never switches back to a version nobody chose in this view.
    choice = st.selectbox(
        "Model version",
        [m.id for m in models],
        index=next((i for i, m in enumerate(models) if m.is_active), 0),
        format_func=lambda v: f"version {v}" + (" (active)" if v == active_id else ""),
        key=f"train_active_{active_id}",
    )
    is_active = choice == active_id
    if st.button(
        f"Version {choice} is the active one" if is_active else f"Make version {choice} active",
        key="train_activate",
        disabled=is_active,
    ) and succeeded(lambda: activate_model(store, actor, choice)):
        st.rerun()


# --- evaluation sets: freeze one, compare the versions on it ------------------------------------


def freeze_set_ui(expanded: bool) -> None:
    with st.expander("Freeze a new evaluation set", expanded=expanded), st.form("train_eval_form"):
        name = st.text_input("Name", max_chars=64, key="train_eval_name")
        share_column, seed_column = st.columns(2)
        share = share_column.number_input(
            "Share of the labelled patients to hold out",
            0.05,
            0.9,
            0.2,
            step=0.05,
            key="train_eval_share",
            help="Drawn per class, whole patients at a time, among the patients not in a set yet.",
        )
        seed = seed_column.number_input("Seed", 0, 2**31 - 1, 0, key="train_eval_seed")
        labelled = current_labels(store)
        names = {
            int(image_id): f"{name} ({label})"
            for image_id, name, label in zip(
                labelled["image_id"], labelled["display_name"], labelled["label"], strict=True
            )
        }
        chosen = st.multiselect(
            "Or choose the images (each with a final label); leave empty to draw patients as above",
            list(names),
            format_func=names.get,
            key="train_eval_images",
        )
        if st.form_submit_button("Freeze the set"):
            image_ids = chosen or attempt(lambda: sample_evaluation_images(store, float(share), int(seed)))
            made = attempt(lambda: freeze_evaluation_set(store, actor, name, image_ids)) if image_ids else None
            if made is not None:
                evaluation_set, job_id = made
                queued = f" Evaluation job {job_id} scores every model version on it." if job_id else ""
                st.success(
                    plain(
                        f"Evaluation set '{evaluation_set.name}' frozen: {evaluation_set.images} images of "
                        f"{evaluation_set.patients} patients. Training will not use them, nor any other image of "
                        f"those patients.{queued}"
                    )
                )


def comparison_ui(evaluation_set) -> None:  # type: ignore[no-untyped-def]
    table = comparison_table(store, evaluation_set.id)
    if table.empty:
        st.caption("No model versions yet.")
        return
    scored = [bool(metrics) and "error" not in metrics for metrics in table["metrics"]]
    localization = [localization_summary(metrics) or {} for metrics in table["metrics"]]
    st.dataframe(
        spreadsheet_safe(
            pd.DataFrame(
                {
                    "version": table["version"],
                    "active": table["active"],
                    "images": table["images"],
                    "ROC AUC (95% interval)": [
                        format_auc(metrics) if ok else None
                        for metrics, ok in zip(table["metrics"], scored, strict=True)
                    ],
                    "pointing game": [block.get("pointing_game") for block in localization],
                    "mass in boxes": [block.get("mass_in_boxes") for block in localization],
                    "images with boxes": [block.get("n") for block in localization],
                    "accuracy": table["accuracy"],
                    "sensitivity": table["sensitivity"],
                    "specificity": table["specificity"],
                    "threshold": table["threshold"],
                    "ECE": table["ece"],
                    "outside training data": table["outside_training_data"],
                    "note": table["note"],
                }
            )
        ),
        hide_index=True,
        key="train_eval_table",
        column_config={
            column: st.column_config.NumberColumn(format="%.3f")
            for column in (
                "accuracy",
                "sensitivity",
                "specificity",
                "threshold",
                "ECE",
                "pointing game",
                "mass in boxes",
            )
        },
    )
    st.caption(
        f"Does the model look where readers look? On the set's images with boxes (at most {LOCALIZATION_CAP}; the "
        "final label's boxes, else the readers'): the pointing game is the share of images whose heat-map peak "
        "falls in a box, the mass in boxes the share of the map inside them, on average."
    )
    curves = [
        (f"version {version}" + (" (active)" if active else ""), metrics)
        for version, active, metrics, ok in zip(
            table["version"], table["active"], table["metrics"], scored, strict=True
        )
        if ok and metrics.get("roc_curve")
    ]
    if curves:
        st.image(
            roc_curves_png(curves, title=f"ROC curves on '{evaluation_set.name}'"),
            width=480,
            caption=(
                f"ROC curve of 1 model version on the same {evaluation_set.images} images"
                if len(curves) == 1
                else f"ROC curves of {len(curves)} model versions on the same {evaluation_set.images} images"
            ),
        )
    jobs = list_jobs(store, kind=EVALUATION_JOB, limit=1)
    if jobs and jobs[0].status in ("queued", "running"):
        st.info(f"Evaluation job {jobs[0].id}: {jobs[0].status} ({plain(jobs[0].progress.get('stage', ''))})")
    elif jobs and jobs[0].status == "failed":
        st.error(f"Evaluation job {jobs[0].id} failed: {plain(jobs[0].error)}")
    if not all(scored) and st.button("Evaluate the versions not scored on this set", key="train_eval_run"):
        job_id = attempt(lambda: submit_evaluation(store, actor, evaluation_set.name, only_missing=True))
        if job_id is not None:
            st.success(f"Evaluation job {job_id} queued.")


st.subheader("Evaluation sets")
st.caption(
    "Frozen sets of labelled images that training never uses, nor any other image of their patients. Every "
    "model version is scored on each set. A newly trained version becomes active by itself only if its ROC "
    f"AUC on the default set is at most {NOT_WORSE_TOLERANCE:g} below the active version's; otherwise it "
    "waits, with the reason, and you may still make it active by hand."
)
freeze_set_ui(expanded=not list_evaluation_sets(store))
evaluation_sets = list_evaluation_sets(store)
if evaluation_sets:
    st.dataframe(
        spreadsheet_safe(
            pd.DataFrame(
                [
                    {
                        "set": evaluation_set.name,
                        "default": evaluation_set.is_default,
                        "images": evaluation_set.images,
                        "patients": evaluation_set.patients,
                        "classes": ", ".join(
                            f"{count} {label}" for label, count in evaluation_set.class_counts.items()
                        ),
                        "frozen by": evaluation_set.created_by,
                        "frozen": evaluation_set.created_at,
                    }
                    for evaluation_set in evaluation_sets
                ]
            )
        ),
        hide_index=True,
        key="train_eval_sets",
    )
    by_name = {evaluation_set.name: evaluation_set for evaluation_set in evaluation_sets}
    shown_set = by_name[
        st.selectbox(
            "Compare the model versions on",
            list(by_name),
            format_func=lambda name: name + (" (default)" if by_name[name].is_default else ""),
            key="train_eval_set",
        )
    ]
    if (
        not shown_set.is_default
        and st.button("Make it the default set", key="train_eval_default")
        and succeeded(lambda: set_default_evaluation_set(store, actor, shown_set.name))
    ):
        st.rerun()
    comparison_ui(shown_set)
