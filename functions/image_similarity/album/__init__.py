"""Folders of local photos without a server: embed them through the vector cache, find duplicates (within an album
or against a library), act on them safely, and report.

    from image_similarity.album import embed_folder, find_duplicates

    run = embed_folder("~/Pictures")                 # run.locations[i] is the file of run.vectors[i]
    result = find_duplicates("~/Pictures", keep="largest")
    for group in result.groups:                       # group.images[0] is the copy to keep
        print(group.keep, [image.path for image in group.movable])
    document = result.to_json()                       # what `image-similarity duplicates --json` writes
"""

from importlib import import_module

# Exported lazily: the HTTP client imports album.image_files, and this package's modules import the client.
EXPORTS = {
    "Embedding": "embedding",
    "embed_folder": "embedding",
    "DuplicateResult": "duplicate_finder",
    "Group": "duplicate_finder",
    "ImageEntry": "duplicate_finder",
    "find_duplicates": "duplicate_finder",
    "apply_moves": "moves",
    "plan_moves": "moves",
    "undo": "moves",
}
__all__ = ["DuplicateResult", "Embedding", "Group", "ImageEntry", "apply_moves", "embed_folder", "find_duplicates",
           "plan_moves", "undo"]


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{EXPORTS[name]}"), name)
