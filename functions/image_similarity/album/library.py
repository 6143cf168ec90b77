"""The reference set of `duplicates --against`: a library folder (embedded through the vector cache, so a library
embedded before costs only hashing) or a vectors file written by `image-similarity embed --out`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from image_similarity.album.image_files import AlbumInputError, find_images
from image_similarity.album.vector_files import FORMATS, read_vectors

if TYPE_CHECKING:
    from image_similarity.album.embedding import Embedding


@dataclass(frozen=True)
class Library:
    locations: list[str]
    keys: list[str]
    vectors: np.ndarray


def load_library(spec: str, embedding: Embedding) -> Library:
    path = Path(spec)
    if path.is_file() and path.suffix.lower() in FORMATS:
        return _vectors_file(path, embedding)
    run = embedding.run(find_images([spec]))
    return Library(run.locations, run.keys, run.vectors)


def _vectors_file(path: Path, embedding: Embedding) -> Library:
    try:
        locations, keys, vectors, model = read_vectors(path)
    except (OSError, ValueError, KeyError) as exc:
        raise AlbumInputError(f"{path}: not a vectors file written by `image-similarity embed --out` ({exc})") from exc
    expected = embedding.backend.model
    if model is not None and model != expected:
        raise AlbumInputError(
            f"{path} holds vectors of {model}, but this run uses {expected}: embed the library again with this model"
        )
    if len(vectors) and vectors.shape[1] != embedding.backend.dim:
        raise AlbumInputError(
            f"{path} holds {vectors.shape[1]}-number vectors; this model makes {embedding.backend.dim}"
        )
    return Library(locations, keys, vectors)
