"""Our pipeline timed stage by stage through the service's own functions, and the floor: reduced-scale decode alone
plus the network alone, with nothing in between."""

from __future__ import annotations

import io
import time

import numpy as np
from image_similarity.core.embedder import Embedder
from image_similarity.core.images import centre_square, decode
from PIL import Image


class OurStages:
    """Decode, preprocess and inference of `service.embed_images`, each timed; the images go in as one batch."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def run(self, images: list[bytes]) -> dict[str, float]:
        size = self.embedder.input_size
        t0 = time.perf_counter()
        decoded = [decode(data, size) for data in images]
        t1 = time.perf_counter()
        batch = np.stack([centre_square(image, size) for image in decoded])
        t2 = time.perf_counter()
        self.embedder.embed(batch)
        t3 = time.perf_counter()
        return {"decode": t1 - t0, "preprocess": t2 - t1, "inference": t3 - t2}


class Floor:
    """The least any pipeline on this model must spend: the decoder at its smallest useful scale, then the network
    on pixels already in place. Orientation, colour conversion, resizing and Python glue are all left out."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        size = embedder.input_size
        self.pixels = {n: np.zeros((n, size, size, 3), np.uint8) for n in (1, 2)}

    def run(self, images: list[bytes]) -> dict[str, float]:
        size = self.embedder.input_size
        t0 = time.perf_counter()
        for data in images:
            image = Image.open(io.BytesIO(data))
            if image.format == "JPEG":
                image.draft(image.mode, (size, size))
            image.load()
        t1 = time.perf_counter()
        self.embedder.embed(self.pixels[len(images)])
        t2 = time.perf_counter()
        return {"decode": t1 - t0, "inference": t2 - t1}
