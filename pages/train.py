import pandas as pd
import streamlit as st

from medreview.jobs import cancel_job, list_jobs, worker_alive
from medreview.ml.configs import CONFIGS
from medreview.ml.registry import activate_model, list_models
from medreview.ml.training.metrics import roc_curve_png
from medreview.ml.training.service import submit_training
from medreview.reading.reads import current_labels
from ui.session import attempt, get_store, session_actor, succeeded
from ui.text import plain

store = get_store()
actor = session_actor("admin")
st.title("Train")

labels = current_labels(store)
if len(labels):
    st.write(
        "Labelled images per class: " + ", ".join(f"**{k}** {v}" for k, v in labels["label"].value_counts().items())
    )
else:
    st.info("No labelled images yet: label some on the Label page first.")

if not worker_alive(store):
    st.warning(
        "No worker is running, so training will wait in the queue. Start one with `make run` "
        "or `python -m medreview worker`."
    )

with st.form("train_form"):
    architecture_column, epochs_column, size_column, seed_column = st.columns(4)
    architecture = architecture_column.selectbox(
        "Architecture",
        list(CONFIGS),
        format_func=lambda name: name.replace("_", " "),
        help="\n\n".join(f"**{name}**: {config.description}" for name, config in CONFIGS.items()),
        key="train_architecture",
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
    if st.form_submit_button("Train", type="primary"):
        params = {"architecture": architecture, "epochs": int(epochs), "seed": int(seed)}
        if size:
            params["input_size"] = int(size)
        job_id = attempt(lambda: submit_training(store, actor, params))
        if job_id is not None:
            st.success(f"Training run {job_id} queued.")


def epoch_table(job) -> pd.DataFrame:
    return pd.DataFrame(job.progress.get("epochs", []))


@st.fragment(run_every=2)
def runs_ui() -> None:
    # A fragment reruns on its own, without the page's check above: check the user again (role,
    # active account, session age, from the database), so a demoted or expired admin's open
    # panel can no longer cancel a run.
    panel_actor = session_actor("admin")
    jobs = list_jobs(store, kind="train", limit=10)
    if not jobs:
        return
    latest = jobs[0]
    st.subheader(f"Run {latest.id}: {latest.status}")
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
    if "input_size" in progress:
        st.caption(
            f"{progress.get('train_images')} training / {progress.get('validation_images')} validation images "
            f"(split by patient) at {progress['input_size']} px"
        )
    if len(epochs):
        loss_column, auc_column = st.columns(2)
        loss_column.line_chart(epochs.set_index("epoch")[["loss", "val_loss"]])
        auc_column.line_chart(epochs.set_index("epoch")[["val_auc", "val_accuracy"]])
    metrics = latest.result.get("metrics") if latest.status == "succeeded" else None
    if metrics:
        show_metrics(metrics)
    with st.expander("Earlier runs"):
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "run": job.id,
                        "status": job.status,
                        "started": job.started_at,
                        "epochs": len(job.progress.get("epochs", [])),
                        "val AUC": (job.result.get("metrics") or {}).get("roc_auc"),
                        "error": job.error,
                    }
                    for job in jobs
                ]
            ),
            hide_index=True,
        )


def show_metrics(metrics: dict) -> None:
    names = metrics["class_names"]
    cells = st.columns(4)
    for cell, (title, key) in zip(
        cells,
        [
            ("ROC AUC", "roc_auc"),
            ("Accuracy", "accuracy"),
            ("Sensitivity", "sensitivity"),
            ("Specificity", "specificity"),
        ],
        strict=True,
    ):
        value = metrics.get(key)
        cell.metric(title, "n/a" if value is None else f"{value:.3f}")
    matrix_column, roc_column = st.columns(2)
    matrix_column.write("Confusion matrix (rows: label, columns: prediction)")
    matrix_column.dataframe(pd.DataFrame(metrics["confusion_matrix"], index=names, columns=names))
    if metrics.get("roc_curve"):
        roc_column.image(roc_curve_png(metrics), width=360)


runs_ui()

st.subheader("Model versions")
models = list_models(store)
if not models:
    st.caption("No models yet.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "version": m.id,
                    "active": m.is_active,
                    "run": m.job_id,
                    "architecture": m.architecture,
                    "px": m.input_size,
                    "classes": ", ".join(m.class_names),
                    "val AUC": m.metrics.get("roc_auc"),
                    "accuracy": m.metrics.get("accuracy"),
                    "created": m.created_at,
                }
                for m in models
            ]
        ),
        hide_index=True,
        key="train_models",
    )
    choice = st.selectbox(
        "Active model",
        [m.id for m in models],
        index=next((i for i, m in enumerate(models) if m.is_active), 0),
        format_func=lambda v: f"version {v}",
        key="train_active",
    )
    if st.button("Make active", key="train_activate") and succeeded(lambda: activate_model(store, actor, choice)):
        st.rerun()
