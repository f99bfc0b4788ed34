import streamlit as st

from medreview.errors import MedreviewError
from medreview.imaging.decoding import Window
from medreview.imaging.overlays import HEATMAP_COLORMAP, colour_bar
from medreview.jobs import list_jobs, worker_alive
from medreview.ml.domain import OUTSIDE_TRAINING_DATA
from medreview.ml.explanations import METHOD_TITLES, ViewMaps, describe_view, request_view_maps
from medreview.ml.prediction import (
    case_predictions_table,
    case_scope,
    case_slices,
    disagreements,
    hidden_predictions,
    most_uncertain,
    predictions_table,
    shown_calls,
    submit_predictions,
)
from medreview.ml.registry import active_model, list_models
from medreview.reading.catalog import get_image, image_table
from medreview.team.roles import Actor
from ui.session import attempt, get_store, session_actor
from ui.text import plain, spreadsheet_safe
from ui.viewer import decoded, image_viewer, overlay_row, viewer_state

store = get_store()
actor = session_actor()
st.title("Predictions")


def case_models(store, exclude: int | None) -> list:  # type: ignore[no-untyped-def]
    """The newest case model version of each scope (study, series), but ``exclude``."""
    newest: dict[str, object] = {}
    for version in sorted(list_models(store), key=lambda v: v.id, reverse=True):
        level = case_scope(version)
        if level is not None and version.id != exclude and level not in newest:
            newest[level] = version
    return list(newest.values())


def model_kind(version) -> str:  # type: ignore[no-untyped-def]
    level = case_scope(version)
    return version.architecture if level is None else f"{level}-level case model, {version.architecture}"


def model_title(version) -> str:  # type: ignore[no-untyped-def]
    level = case_scope(version)
    kind = "image model" if level is None else f"{level}-level case model"
    return f"Version {version.id}: {kind}" + (" (active)" if version.is_active else "")


def case_view(table) -> None:  # type: ignore[no-untyped-def]
    """A case model's predictions: the cases on the left; the picked case's verdict, its top slices
    by attention (a click opens that slice, its map beside it) and the viewer on the right."""
    wrong_cases = table[table["agrees"] == False]  # noqa: E712  (None: no label or no confident call)
    list_column, view_column = st.columns([2, 3])
    shown_columns = ["case", "slices", "predicted_class", "probability", "label", "agrees", "outside_reason"]
    with list_column:
        all_tab, disagree_tab = st.tabs([f"All ({len(table)})", f"Model and label disagree ({len(wrong_cases)})"])
        picks = []
        for tab, source, key in ((all_tab, table, "predict_cases"), (disagree_tab, wrong_cases, "predict_cases_wrong")):
            with tab:
                picked = st.dataframe(
                    spreadsheet_safe(shown_calls(source)[shown_columns]),
                    hide_index=True,
                    on_select="rerun",
                    selection_mode="single-row",
                    key=key,
                    height=480,
                    column_config={
                        "probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
                        "outside_reason": st.column_config.TextColumn("why outside the training data"),
                    },
                )
                picks.append((key, source, picked))
    seen = st.session_state.setdefault("predict_seen_case_picks", {})
    for key, source, picked in picks:
        rows = list(picked.selection.rows) if picked else []
        if rows and rows != seen.get(key) and rows[0] < len(source):
            st.session_state["predict_case_row"] = int(source["prediction_id"].iloc[rows[0]])
        seen[key] = rows
    prediction_id = st.session_state.get("predict_case_row", int(table["prediction_id"].iloc[0]))
    if prediction_id not in set(table["prediction_id"]):
        prediction_id = int(table["prediction_id"].iloc[0])
    row = table[table["prediction_id"] == prediction_id].iloc[0]
    with view_column:
        slices = attempt(lambda: case_slices(store, actor, prediction_id))
        if slices is None:
            st.stop()
        st.subheader(f"{plain(row['case'])} · {int(row['slices'])} slices")
        if bool(row["outside_training_data"]):
            verdict = f"Model: **{OUTSIDE_TRAINING_DATA}** ({plain(row['outside_reason'])}): no class is given"
        else:
            verdict = f"Model: **{plain(row['predicted_class'])}** ({row['probability']:.1%})"
        if isinstance(row["label"], str):
            verdict += f" · label: **{plain(row['label'])}**" + (
                "" if row["agrees"] is not False else " · :red[disagrees]"
            )
        st.markdown(verdict)
        class_names = slices["class_names"]
        class_column, method_column = st.columns(2)
        cam_class = class_column.selectbox(
            "Map for class",
            class_names,
            index=class_names.index(row["predicted_class"]) if row["predicted_class"] in class_names else 0,
            key=f"predict_case_class_{prediction_id}",
        )
        # Grad-CAM first, as for images (its maps of a case model's top slices can come out empty:
        # the page says so, and HiResCAM is the other view).
        method = method_column.radio(
            "Map",
            ["gradcam", "hirescam"],
            format_func=METHOD_TITLES.get,
            horizontal=True,
            key="predict_case_method",
            help="Both explain the case model's head on the slice alone. Grad-CAM weights each feature channel "
            "by its gradient averaged over the slice; HiResCAM multiplies gradient and feature at each position, "
            "so it shows only what the score was computed from (Draelos & Carin, 2020).",
        )
        st.markdown("**Top slices by attention** (a click opens the slice with its map)")
        top = slices["top"]
        picked_key = f"predict_case_slice_{prediction_id}"
        for index, entry in enumerate(top):
            label = f"Slice {entry['slice']} · attention {entry['attention']:.2f}"
            if st.button(label, key=f"predict_top_{prediction_id}_{index}"):
                st.session_state[picked_key] = index
                st.session_state["predict_case_jump"] = st.session_state.get("predict_case_jump", 0) + 1
        chosen = top[st.session_state.get(picked_key, 0)]
        maps = slices["maps"][method][class_names.index(cam_class)]  # (k, h, w)
        title = METHOD_TITLES[method]
        overlays = [
            overlay_row(entry["image_id"], 0, maps[index], f"{title}: {cam_class} (slice {entry['slice']})")
            for index, entry in enumerate(top)
        ]
        image_viewer(
            "predict_viewer",
            actor,
            [entry["image_id"] for entry in top],
            position=chosen["image_id"],
            jump=st.session_state.get("predict_case_jump", 0) * 100_000 + chosen["image_id"],
            overlays=overlays,
            split=True,
        )
        st.caption(
            f"Slice {chosen['slice']} of {int(row['slices'])}: the {title} map for **{plain(cam_class)}** beside "
            "it (the case model's head on this slice alone). O shows or hides it, [ and ] change its opacity."
        )
        st.image(colour_bar(12, 256), width="stretch")
        if maps[top.index(chosen)].max() == 0:
            st.caption(f"No positive evidence for **{plain(cam_class)}** on this slice: the {title} map is empty.")


model = active_model(store)
# Case models (study or series) stay beside the active image model (one version is active per
# store): the newest of each scope is offered here by name.
choices = ([model] if model is not None else []) + case_models(store, exclude=model.id if model is not None else None)
if not choices:
    st.info("No active model yet: train one on the Train page.")
    st.stop()
if len(choices) > 1:
    titles = {choice.id: model_title(choice) for choice in choices}
    chosen = st.selectbox("Model", list(titles), format_func=titles.get, key="predict_model")
    model = next(choice for choice in choices if choice.id == chosen)
else:
    model = choices[0]
case_level = case_scope(model)
# The held-out test figures when the run had a test part, else validation; with their interval.
part = model.metrics.get("headline", "validation")
block = model.metrics.get(part) or model.metrics
auc, interval = block.get("roc_auc"), block.get("roc_auc_ci")
auc_text = "n/a" if auc is None else f"{auc:.3f}" + (f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else "")
st.caption(
    f"{'Active model' if model.is_active else 'Model'}: version {model.id} ({model_kind(model)}, "
    f"{model.input_size} px, classes "
    f"{plain(', '.join(model.class_names))}; {part} AUC {auc_text})"
)


def run_model_ui(expanded: bool) -> None:
    """Queue a prediction job (reviewers and admins: submit_predictions refuses annotators, so they
    are not offered it). Open while the model has called nothing: once it has, the image and its
    map come first on the screen."""
    with st.expander("Run the model", expanded=expanded):
        if case_level is not None:
            scope = st.radio(
                f"{case_level.capitalize()} cases",
                ["unlabelled", "all"],
                horizontal=True,
                key="predict_case_scope",
                format_func={"unlabelled": f"Unread {case_level} cases", "all": f"Every {case_level}"}.get,
            )
            if st.button("Run predictions", type="primary", key="predict_run"):
                job_id = attempt(lambda: submit_predictions(store, actor, scope=scope, model_version_id=model.id))
                if job_id is not None:
                    st.success(f"Prediction job {job_id} queued.")
            return
        scope = st.radio(
            "Images",
            ["unlabelled", "all", "selected"],
            horizontal=True,
            key="predict_scope",
            format_func={"unlabelled": "All unlabelled", "all": "All images", "selected": "Selected images"}.get,
        )
        selected: list[int] = []
        if scope == "selected":
            images = image_table(store)
            names = dict(zip(images["image_id"], images["file"], strict=True))
            selected = st.multiselect(
                "Images to predict", list(names), format_func=lambda i: names[i], key="predict_ids"
            )
        if st.button("Run predictions", type="primary", key="predict_run"):
            job_id = attempt(
                lambda: submit_predictions(store, actor, scope=scope, image_ids=selected, model_version_id=model.id)
            )
            if job_id is not None:
                st.success(f"Prediction job {job_id} queued.")


table = (
    predictions_table(store, actor, model.id) if case_level is None else case_predictions_table(store, actor, model.id)
)
if actor.can("reviewer"):
    run_model_ui(expanded=table.empty)


@st.fragment(run_every=2)
def job_status_ui() -> None:
    session_actor()  # a fragment reruns on its own: check the user again (see pages/train.py)
    jobs = list_jobs(store, kind="predict", limit=1)
    if not jobs:
        return
    job = jobs[0]
    if job.status in ("queued", "running"):
        done, total = job.progress.get("done", 0), job.progress.get("total") or 0
        st.progress(done / total if total else 0.0, text=f"Prediction job {job.id}: {job.status} ({done}/{total})")
    elif job.status == "failed":
        st.error(f"Prediction job {job.id} failed: {plain(job.error)}")
    elif st.session_state.get("predict_seen_job") != job.id:
        st.session_state["predict_seen_job"] = job.id
        st.rerun()  # refresh the table below with the new predictions


job_status_ui()


def blinded_note(hidden: int, more: str = "") -> str:
    """Blinded reading keeps the model's output of an image from an annotator until they have read
    it: say so, rather than "no predictions" while the model has called hundreds of images."""
    return (
        "Blinded reading: you see the model's output for an image once you have saved your own read of it. "
        f"It has called {hidden:,}{more} images you have not read yet: read them on the Label page."
    )


hidden = hidden_predictions(store, actor, model.id)
if table.empty:
    if hidden:
        st.info(blinded_note(hidden))
    elif actor.can("reviewer"):
        st.info("No predictions from this model yet: run it above.")
    else:
        st.info("No predictions from this model yet: a reviewer or an admin runs the model on the images.")
    st.stop()
if hidden:
    st.caption(blinded_note(hidden, " more"))

if case_level is not None:
    case_view(table)
    st.stop()

wrong = disagreements(store, actor, model.id)
uncertain = most_uncertain(store, actor, model.id)
list_column, view_column = st.columns([2, 3])
with list_column:
    all_tab, disagree_tab, uncertain_tab = st.tabs(
        [f"All ({len(table)})", f"Model and label disagree ({len(wrong)})", f"Label next ({len(uncertain)})"]
    )
    columns = {
        "probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
        "outside_reason": st.column_config.TextColumn("why outside the training data"),
    }
    outside = int(table["outside_training_data"].sum())
    if outside:
        st.caption(
            f"{outside} of these images lie outside the data this model was trained on: no class is given for them."
        )
    picks = []
    for tab, source, key in (
        (all_tab, table, "predict_table"),
        (disagree_tab, wrong, "predict_disagree"),
        (uncertain_tab, uncertain, "predict_uncertain"),
    ):
        with tab:
            if tab is uncertain_tab:
                st.caption("Unlabelled images the model is least sure about: label these next.")
            picked = st.dataframe(
                spreadsheet_safe(shown_calls(source).drop(columns=["prediction_id", "image_id"])),
                hide_index=True,
                on_select="rerun",
                selection_mode="single-row",
                key=key,
                height=480,
                column_config=columns,
            )
            picks.append((key, source, picked))

# Each tab's table keeps its own selection, so the image shown follows the table whose selection
# changed in this run (the newest click), not the last tab that has one.
seen = st.session_state.setdefault("predict_seen_picks", {})
for key, source, picked in picks:
    rows = list(picked.selection.rows) if picked else []
    if rows and rows != seen.get(key) and rows[0] < len(source):
        st.session_state["predict_row"] = int(source["prediction_id"].iloc[rows[0]])
    seen[key] = rows
prediction_id = st.session_state.get("predict_row", int(table["prediction_id"].iloc[0]))
if prediction_id not in set(table["prediction_id"]):
    prediction_id = int(table["prediction_id"].iloc[0])
row = table[table["prediction_id"] == prediction_id].iloc[0]


def view_maps(
    reader: Actor, frame_index: int, window: Window | None, method: str, retry: bool = False
) -> ViewMaps | None:
    """The maps of the view shown, or the job computing them (None: refused, with the reason shown)."""
    return attempt(
        lambda: request_view_maps(
            store, reader, model.id, int(row["image_id"]), frame_index, window, method, retry=retry
        )
    )


@st.fragment(run_every=2)
def map_status_ui(frame_index: int, window: Window | None, method: str, view: str) -> None:
    """Wait for the map of the view shown: a note while its job runs, the page again once it is there."""
    reader = session_actor()  # a fragment reruns on its own: check the user again (see pages/train.py)
    maps = view_maps(reader, frame_index, window, method)
    if maps is None:
        return
    if maps.ready:
        st.rerun()  # draw the overlay with the rest of the page
    if maps.status == "failed":
        st.error(f"The {METHOD_TITLES[method]} map for {view} could not be computed: {plain(maps.error)}")
        if st.button("Try again", key="predict_map_retry"):
            view_maps(reader, frame_index, window, method, retry=True)
            st.rerun()
        return
    st.info(f"Computing the {METHOD_TITLES[method]} map for {view}... (job {maps.job_id}: {maps.status})")
    if not worker_alive(store):
        st.warning(
            "No worker is running, so the map waits in the queue. Start one with `make run` "
            "or `python -m medreview worker`."
        )


with view_column:
    try:
        record = get_image(store, actor, int(row["image_id"]))
        image = decoded(int(row["image_id"]))  # the frame count and colour, for the view's description
    except MedreviewError as error:
        st.error(plain(error))
        st.stop()
    class_names = list(model.class_names)
    outside_training_data = bool(row["outside_training_data"])
    st.subheader(plain(record.display_name.rsplit("/", 1)[-1]))
    if outside_training_data:
        verdict = f"Model: **{OUTSIDE_TRAINING_DATA}** ({plain(row['outside_reason'])}): no class is given"
    else:
        verdict = f"Model: **{plain(row['predicted_class'])}** ({row['probability']:.1%})"
    if isinstance(row["label"], str):
        verdict += f" · label: **{plain(row['label'])}**" + ("" if row["agrees"] is not False else " · :red[disagrees]")
    st.markdown(verdict)
    class_column, method_column = st.columns(2)
    # Keyed by the prediction: each image's map opens on the class the model gave it, not on the
    # class chosen for the image before.
    cam_class = class_column.selectbox(
        "Map for class",
        class_names,
        index=class_names.index(row["predicted_class"]) if row["predicted_class"] in class_names else 0,
        key=f"predict_cam_class_{prediction_id}",
    )
    method = method_column.radio(
        "Map",
        list(METHOD_TITLES),
        format_func=METHOD_TITLES.get,
        horizontal=True,
        key="predict_map_method",
        help=(
            "Both are computed on the frame and window shown. Grad-CAM weights each feature channel by "
            "its gradient averaged over the image; HiResCAM multiplies gradient and feature at each "
            "position, so it shows only what the score was computed from (Draelos & Carin, 2020)."
        ),
    )
    # The map is computed on the frame and window the reader has on screen: the viewer reports them
    # (a window drag once released) and the map of that view is drawn over it, pixel for pixel.
    image_id = int(row["image_id"])
    reported = viewer_state("predict_viewer").get("view") or {}
    frame_index, window = 0, None
    if reported.get("imageId") == image_id:
        frame_index = int(reported.get("frame") or 0)
        if reported.get("window"):
            window = Window(float(reported["window"]["center"]), float(reported["window"]["width"]))
    view = describe_view(frame_index, image.frame_count, window, image.is_color)
    maps = view_maps(actor, frame_index, window, method)
    overlays = []
    if maps is not None and maps.ready:
        heat = maps.maps[class_names.index(cam_class)]
        overlays = [overlay_row(image_id, frame_index, heat, f"{METHOD_TITLES[method]}: {cam_class}")]
    # The image and the image under its map side by side, sharing window, zoom, pan and slice.
    image_viewer("predict_viewer", actor, [image_id], position=image_id, overlays=overlays, split=True)
    if maps is not None and maps.ready:
        st.caption(
            f"{METHOD_TITLES[method]} for **{plain(cam_class)}** · {view} · O shows or hides it, [ and ] "
            "change its opacity"
        )
        st.image(colour_bar(12, 256), width="stretch")
        st.caption(
            f"{HEATMAP_COLORMAP}: dark = low, bright = high evidence for **{plain(cam_class)}**, "
            "relative to this map's maximum"
        )
        if heat.max() == 0:
            st.caption(f"No positive evidence for **{plain(cam_class)}** on this view: the map is empty.")
        if outside_training_data:
            # No probability for an image the model was not trained on: a figure would read as a call.
            st.caption(
                "This image lies outside what the model was trained on: the map shows where it looked, "
                "not evidence for a class, and no probability is given."
            )
        else:
            view_probability = maps.probabilities[cam_class]
            st.caption(f"On this view the model gives **{plain(cam_class)}** {view_probability:.1%}.")
    elif maps is not None:
        map_status_ui(frame_index, window, method, view)
