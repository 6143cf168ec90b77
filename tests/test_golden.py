"""A fixed image's embedding must not drift: any model or preprocessing change shows up here first."""

from __future__ import annotations

import json

import numpy as np
from regenerate import GOLDEN, chelsea_png


def test_chelsea_embedding_matches_the_stored_golden_values(service):
    golden = json.loads(GOLDEN.read_text())
    assert golden["model_version"] == service.model_version, "model changed: run tests/golden/regenerate.py"
    (vector,) = service.embed_images([chelsea_png()])
    np.testing.assert_allclose(vector, np.array(golden["embedding"]), atol=1e-4, rtol=0)
