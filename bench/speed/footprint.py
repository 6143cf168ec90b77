"""The container image's own layers, from what is installed here: the service's run-time requirements and
everything they pull in, plus the package and its model. Docker cannot build here, so the base image is left out."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "functions" / "requirements.txt"
PACKAGE = ROOT / "functions" / "image_similarity"


def closure(requirements: list[str]) -> set[str]:
    """Distribution names pulled in on this platform (markers evaluated, no extras)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(name) or []]
    return seen


def dist_bytes(name: str) -> int:
    dist = metadata.distribution(name)
    return sum(
        Path(dist.locate_file(f)).stat().st_size for f in dist.files or [] if Path(dist.locate_file(f)).is_file()
    )


def measure() -> dict[str, object]:
    lines = [line for line in REQUIREMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    packages = {name: dist_bytes(name) / 1e6 for name in sorted(closure(lines))}
    service = sum(p.stat().st_size for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts) / 1e6
    return {"packages_mb": packages, "service_and_model_mb": service, "packages_total_mb": sum(packages.values()),
            "added_layers_mb": sum(packages.values()) + service}
