"""``import-folder``: DIR/<class name>/<images> -> stored images labelled with that class."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from medreview.errors import MedreviewError
from medreview.ingest import IngestResult, InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.schema import add_label_class, label_classes
from medreview.store import Store
from medreview.team.roles import Actor

__all__ = ["import_class_folders"]


def import_class_folders(store: Store, folder: Path, actor: Actor = LOCAL_ACTOR) -> list[IngestResult]:
    if not folder.is_dir():
        raise MedreviewError(f"{folder} is not a folder")
    class_folders = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    if not class_folders:
        raise MedreviewError(f"{folder} has no sub-folders: put each class's images in DIR/<class name>/")
    known = set(label_classes(store))
    results: list[IngestResult] = []
    for class_folder in class_folders:
        class_name = " ".join(class_folder.name.split()).lower()
        if class_name not in known:
            class_name = add_label_class(store, actor, class_name)
            known.add(class_name)

        def files(root: Path = class_folder) -> Iterator[InputFile]:
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
                yield InputFile(str(path), path.read_bytes())

        for result in ingest_files(store, files(), chunk_size=500):
            # A duplicate still gets the folder's label: the folder is the user's statement of class.
            if result.image_id is not None:
                save_read(store, actor, result.image_id, class_name)
            results.append(result)
    return results
