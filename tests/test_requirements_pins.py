"""The second interpreter's test requirements pin what the main ones pin (make test-service-py313)."""

from __future__ import annotations

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def _pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)(\[[a-z0-9,]+\])?==(\S+)", line):
            found[match.group(1).lower()] = match.group(3)
    return found


def test_service_test_pins_match_the_development_pins():
    service = _pins(REPOSITORY / "requirements-service-tests.txt")
    development = {**_pins(REPOSITORY / "model" / "requirements.txt"), **_pins(REPOSITORY / "requirements-dev.txt")}
    assert service and {name: development.get(name) for name in service} == service
