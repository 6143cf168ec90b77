#!/usr/bin/env python3
"""Rewrite the examples in functions/image_similarity/openapi.json from real photos and the shipped model.

The request examples carry small real JPEGs (scikit-image's bundled cat photo, a few KB in base64); the 200 examples
carry what the service answers for them, and each error example with an `x-request` body carries the service's answer
to that body, so the document shows true answers and tests/test_openapi_contract.py can check the running service
against it. Run after changing the model: `.venv/bin/python scripts/openapi_examples.py`.
"""

from __future__ import annotations

import base64
import io
import json

from image_similarity.core.contract import OPENAPI_PATH
from image_similarity.core.service import build_service
from image_similarity.core.settings import Settings
from PIL import Image, ImageOps
from skimage import data

# Small enough that the document stays light, large enough that the embedding is meaningful.
EXAMPLE_SIZE = (96, 64)
JPEG_QUALITY = 70
URL_BASE = "https://example.com/photos/"  # a documentation-only domain (RFC 2606): users put their own URL here
REQUEST = "#/paths/~1image-similarity/post/requestBody/content/application~1json/examples"
EMBEDDING_DECIMALS = 6
SIMILARITY_DECIMALS = 5


def small_jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.resize(EXAMPLE_SIZE, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def main() -> None:
    cat = Image.fromarray(data.chelsea())
    images = {"cat.jpg": small_jpeg(cat), "cat-mirrored.jpg": small_jpeg(ImageOps.mirror(cat))}
    service = build_service(Settings(threads=1))
    vectors = service.embed_images(list(images.values()))
    cat_b64, mirrored_b64 = (base64.b64encode(raw).decode() for raw in images.values())
    embedding = [round(float(x), EMBEDDING_DECIMALS) for x in vectors[0]]
    score = service.handle(json.dumps({"img_1": cat_b64, "img_2": mirrored_b64})).body["similarity"]

    doc = json.loads(OPENAPI_PATH.read_text())
    operation = doc["paths"]["/image-similarity"]["post"]
    operation["requestBody"]["content"]["application/json"]["examples"] = {
        "one_image_base64": {
            "summary": "One image, base64: its embedding",
            "description": f"A {EXAMPLE_SIZE[0]}x{EXAMPLE_SIZE[1]} JPEG of a cat ({len(images['cat.jpg'])} bytes).",
            "value": {"img": cat_b64},
        },
        "two_images_base64": {
            "summary": "Two images, base64: their similarity",
            "description": "The cat photo and its mirror image: near-duplicates, so the similarity is close to 1.",
            "value": {"img_1": cat_b64, "img_2": mirrored_b64},
        },
        "one_image_url": {
            "summary": "One image by URL: its embedding",
            "description": "Replace the URL with a public http(s) URL of your image, or s3://bucket/key.",
            "value": {"url": URL_BASE + "cat.jpg"},
        },
        "two_images_url": {
            "summary": "Two images by URL: their similarity",
            "description": "`url_1`/`img_1` and `url_2`/`img_2` can be mixed: a URL for one, base64 for the other.",
            "value": {"url_1": URL_BASE + "cat.jpg", "url_2": URL_BASE + "cat-mirrored.jpg"},
        },
    }
    operation["responses"]["200"]["content"]["application/json"]["examples"] = {
        "embedding": {
            "summary": "One image: the embedding",
            "description": "The answer to the `one_image_base64` and `one_image_url` examples.",
            "value": {"result": embedding},
            "x-answers": [f"{REQUEST}/one_image_base64", f"{REQUEST}/one_image_url"],
        },
        "similarity": {
            "summary": "Two images: the similarity",
            "description": "The answer to the `two_images_base64` and `two_images_url` examples.",
            "value": {"similarity": round(score, SIMILARITY_DECIMALS)},
            "x-answers": [f"{REQUEST}/two_images_base64", f"{REQUEST}/two_images_url"],
        },
    }
    info = service.embedder.info
    doc["components"]["schemas"]["PingResponse"] = {
        "type": "object",
        "required": ["status", "model_version", "thresholds"],
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "model_version": {"type": "string", "description": "The running model; embeddings of other versions "
                              "are not comparable with its own"},
            "thresholds": {
                "type": "object",
                "required": ["fpr_0.01", "fpr_0.001", "duplicates_certain", "duplicates_margin"],
                "properties": {
                    **{key: {"type": "number", "minimum": 0, "maximum": 1, "description": (
                        f"Similarity above which two images are the same picture at {rate} false positives, "
                        "calibrated for this model on held-out images")}
                       for key, rate in (("fpr_0.01", "1 %"), ("fpr_0.001", "0.1 %"))},
                    "duplicates_certain": {"type": "number", "minimum": 0, "maximum": 1, "description": (
                        "Similarity from which `image-similarity duplicates` groups two album pictures whatever "
                        "else the album holds (a re-saved photo among many shots of one scene): 1 in 100,000 "
                        "unrelated pairs of a held-out album")},
                    "duplicates_margin": {"type": "number", "minimum": 0, "maximum": 1, "description": (
                        "How far above the mean of two album pictures' 10th-best similarities in the album their own "
                        "similarity (at least fpr_0.01) must be for `image-similarity duplicates` to group them: "
                        "look-alikes have many pictures nearly as close, copies stand out. Calibrated for this model "
                        "as the smallest margin with pair precision 0.95 on a held-out album")},
                },
            },
        },
        "description": ("`GET /ping` on the local and SageMaker servers: the running model and its calibrated "
                        "thresholds (the same numbers as this document's description)"),
        "example": {"status": "ok", "model_version": info.version, "thresholds": info.thresholds},
    }
    for status, response in operation["responses"].items():
        for example in response["content"]["application/json"].get("examples", {}).values():
            if "x-request" in example:  # an error the service itself gives: document its exact answer
                answer = service.handle(json.dumps(example["x-request"]))
                assert answer.status == int(status), (status, answer)
                example["value"] = answer.body
    OPENAPI_PATH.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OPENAPI_PATH}: similarity {score:.5f}, images {[len(b) for b in images.values()]} bytes")


if __name__ == "__main__":
    main()
