"""Rewrite chelsea_embedding.json after an intended model or preprocessing change (then review the diff).

    .venv/bin/python tests/golden/regenerate.py
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from image_similarity.core.service import build_service
from image_similarity.core.settings import Settings
from PIL import Image
from skimage import data

GOLDEN = Path(__file__).with_name("chelsea_embedding.json")


def chelsea_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    service = build_service(Settings(threads=1))
    (vector,) = service.embed_images([chelsea_png()])
    record = {"model_version": service.model_version, "image": "skimage.data.chelsea() as PNG",
              "embedding": np.round(vector.astype(np.float64), 7).tolist()}
    GOLDEN.write_text(json.dumps(record) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
