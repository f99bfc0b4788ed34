"""``import-folder``: DIR/<class name>/<images> -> stored images labelled with that class.

Reports one result per file and never stops half-way: a class folder whose name cannot be a class
(blank, too long) is refused as a whole with the reason and the others are imported; hidden files
and folders (names starting with ".") and files outside any class folder are skipped with a note.
Files are named by their path below DIR ("normal/img1.png"), never by the full path on this machine.

With ``evaluation_set``, the imported images are frozen as that evaluation set, which training never
uses (:mod:`medreview.reading.evaluation_sets`): a labelled test set brought from elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from medreview.errors import MedreviewError
from medreview.ingest.service import REJECTED, SKIPPED, IngestResult, InputFile, ingest_files
from medreview.reading.evaluation_sets import create_evaluation_set, new_set_name
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.schema import add_label_class, label_classes
from medreview.store import Store
from medreview.team.roles import Actor

__all__ = ["import_class_folders"]

_HIDDEN = "hidden (its name starts with '.'): skipped"


def import_class_folders(
    store: Store, folder: Path, actor: Actor = LOCAL_ACTOR, evaluation_set: str | None = None
) -> list[IngestResult]:
    """Import and label DIR/<class>/*; with ``evaluation_set``, freeze the imported images (new and
    already stored) as a new evaluation set of that name, checked before anything is imported."""
    if not folder.is_dir():
        raise MedreviewError(f"{folder} is not a folder")
    if evaluation_set is not None:
        evaluation_set = new_set_name(store, evaluation_set)
    results: list[IngestResult] = []
    class_folders = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            results.append(IngestResult(child.name + ("/" if child.is_dir() else ""), SKIPPED, _HIDDEN))
        elif child.is_dir():
            class_folders.append(child)
        else:
            results.append(IngestResult(child.name, SKIPPED, "not in a class folder: put it in DIR/<class name>/"))
    if not class_folders:
        raise MedreviewError(f"{folder} has no sub-folders: put each class's images in DIR/<class name>/")
    known = set(label_classes(store))
    for class_folder in class_folders:
        try:
            class_name = " ".join(class_folder.name.split()).lower()
            if class_name not in known:
                class_name = add_label_class(store, actor, class_name)
                known.add(class_name)
        except MedreviewError as error:
            results.append(IngestResult(class_folder.name + "/", REJECTED, f"not a usable class name: {error}"))
            continue
        skipped: list[IngestResult] = []
        for result in ingest_files(store, actor, _files(folder, class_folder, skipped), chunk_size=500):
            # A duplicate still gets the folder's label: the folder is the user's statement of class.
            if result.image_id is not None:
                save_read(store, actor, result.image_id, class_name)
            results.append(result)
        results.extend(skipped)
    if evaluation_set is not None:
        _freeze(store, actor, evaluation_set, folder, results)
    return results


def _freeze(store: Store, actor: Actor, name: str, folder: Path, results: list[IngestResult]) -> None:
    image_ids = [result.image_id for result in results if result.image_id is not None]
    if not image_ids:
        raise MedreviewError(f"no image of {folder} could be imported, so the evaluation set '{name}' was not made")
    try:
        create_evaluation_set(store, actor, name, image_ids, description="imported from class folders")
    except MedreviewError as error:
        # The images are stored and labelled, but not held out: training would use them. Say so.
        raise MedreviewError(
            f"the images were imported and labelled, but the evaluation set '{name}' was not made ({error}); "
            "until it is, training may use them: freeze them on the Train page"
        ) from error


def _files(root: Path, class_folder: Path, skipped: list[IngestResult]) -> Iterator[InputFile | IngestResult]:
    """The files below ``class_folder`` in name order, named relative to ``root``; hidden entries
    are noted in ``skipped`` (once per hidden folder) and not entered."""
    for here, folders, names in os.walk(class_folder):
        here_path = Path(here)
        for name in sorted(folders):
            if name.startswith("."):
                skipped.append(IngestResult((here_path / name).relative_to(root).as_posix() + "/", SKIPPED, _HIDDEN))
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(names):
            path = here_path / name
            relative = path.relative_to(root).as_posix()
            if name.startswith("."):
                skipped.append(IngestResult(relative, SKIPPED, _HIDDEN))
                continue
            try:
                yield InputFile(relative, path.read_bytes())
            except OSError as error:
                yield IngestResult(relative, REJECTED, f"cannot read the file: {error.strerror or error}")
