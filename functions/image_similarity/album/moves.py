"""Safe actions on a duplicate result: move the copies not kept into a folder (keeping their paths relative to the
scanned folders), write a JSON log of every move, and undo a log. Nothing is ever deleted or overwritten."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from image_similarity.album.duplicate_finder import DuplicateResult
from image_similarity.album.image_files import is_url

LOG_KIND = "image-similarity moves"


@dataclass(frozen=True)
class Move:
    source: Path
    target: Path


@dataclass(frozen=True)
class MoveOutcome:
    done: list[Move]
    refused: list[tuple[Move, str]]  # the move and why it was not made


def plan_moves(result: DuplicateResult, inputs: list[str], destination: Path) -> list[Move]:
    """Every local, non-kept file of every group, to `destination` / its path relative to the scanned folders."""
    local = [Path(i).expanduser().resolve() for i in inputs if not is_url(i)]
    folders = [path if path.is_dir() else path.parent for path in local]
    root = Path(os.path.commonpath(folders)) if folders else Path("/")
    moves = []
    for group in result.groups:
        for image in group.movable:
            if is_url(image.path):
                continue
            source = Path(image.path).resolve()
            relative = source.relative_to(root) if source.is_relative_to(root) else Path(source.name)
            moves.append(Move(source, destination.expanduser().resolve() / relative))
    return moves


def default_log_path(destination: Path) -> Path:
    return destination / f"moves-{datetime.now():%Y%m%d-%H%M%S}.json"


def apply_moves(moves: list[Move], log: Path) -> MoveOutcome:
    """Make each move whose target is free; the log is written even if the run is interrupted half-way."""
    done: list[Move] = []
    refused: list[tuple[Move, str]] = []
    try:
        for move in moves:
            reason = _move(move.source, move.target)
            if reason:
                refused.append((move, reason))
            else:
                done.append(move)
    finally:
        if done:
            log.parent.mkdir(parents=True, exist_ok=True)
            entries = [{"from": str(m.source), "to": str(m.target)} for m in done]
            log.write_text(json.dumps({"kind": LOG_KIND, "moves": entries}, indent=1) + "\n")
    return MoveOutcome(done, refused)


def undo(log: Path) -> MoveOutcome:
    """Move every file of a log back where it came from, the last move first."""
    try:
        document = json.loads(log.read_text())
        moves = [Move(Path(entry["from"]), Path(entry["to"])) for entry in document["moves"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{log}: not a move log written by `image-similarity duplicates --move-to`") from exc
    if document.get("kind") != LOG_KIND:
        raise ValueError(f"{log}: not a move log written by `image-similarity duplicates --move-to`")
    done: list[Move] = []
    refused: list[tuple[Move, str]] = []
    for move in reversed(moves):
        reason = _move(move.target, move.source)
        if reason:
            refused.append((move, reason))
        else:
            done.append(move)
    return MoveOutcome(done, refused)


def _move(source: Path, target: Path) -> str | None:
    """Move one file, never over an existing one; the reason when it cannot be done."""
    if not source.is_file():
        return f"{source} is not there any more"
    if target.exists():
        return f"{target} already exists"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    except OSError as exc:
        return f"{exc.strerror or exc}"
    return None
