"""The development corpus: thousands of originals from Debian packages, split BY SOURCE into train / validation / test.

    .venv/bin/python -m bench.quality.corpus        # downloads + extracts the packages, writes corpus.json (cached)

Each source is one Debian package at a pinned version, fetched with `apt-get download` (no root, no install) and
unpacked with `dpkg-deb -x` into CORPUS_DIR (default ~/.cache/image-similarity-corpus; nothing is committed). Files
are picked by path, size and content, then near-duplicates are dropped across the whole corpus (64-bit pHash within
DUPLICATE_BITS), test first: an image that also appears in train or validation stays in test only, so no choice made
on train or validation ever sees a test picture. The same package versions always give the same corpus.json.

Never used, for anything: the Debian wallpaper packages gnome-backgrounds, mate-backgrounds,
plasma-workspace-wallpapers, ukui-wallpapers and lomiri-wallpapers* (an independent evaluation draws on them); no
source below is a wallpaper package or ships desktop wallpapers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

CORPUS_DIR = Path(os.environ.get("IMAGE_SIMILARITY_CORPUS", Path.home() / ".cache" / "image-similarity-corpus"))
SPLITS = ("train", "validation", "test")
MIN_SIDE = 160  # smaller files are sprites and icons: too little picture to copy
MAX_LOADED_SIDE = 512  # originals are loaded at most this big: the model sees 224 px, recaptures show <= 440
DUPLICATE_BITS = 6  # pHash Hamming distance at or below which two files count as one picture
MIN_GREY_STD = 10.0  # flat fills and plain gradients are not pictures anyone copies
POPCOUNT = np.array([i.bit_count() for i in range(256)], np.uint8)
FORBIDDEN = ("gnome-backgrounds", "mate-backgrounds", "plasma-workspace-wallpapers", "ukui-wallpapers",
             "lomiri-wallpapers")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    split: str
    kind: str
    license: str
    include: tuple[str, ...]  # path prefixes inside the package
    exclude: tuple[str, ...] = ()
    cap: int | None = None  # at most this many files, a seeded sample

    @property
    def root(self) -> Path:
        return CORPUS_DIR / "x" / self.name


GAMES = "usr/share/games/"
PACKAGES: tuple[Package, ...] = (
    # train: graphics, artwork and textures
    Package("openclipart-png", "1:0.18+dfsg-19", "train", "clip art and icons",
            "public domain (Open Clip Art Library)", ("usr/share/openclipart/png/",), cap=2600),
    Package("wesnoth-1.16-data", "1:1.16.9-1", "train", "game artwork: portraits, scenery, story paintings",
            "GPL-2+", (GAMES + "wesnoth/1.16/",)),
    Package("extremetuxracer-data", "0.8.2-1", "train", "terrain and sky textures", "GPL-2+",
            (GAMES + "etr/",)),
    # train: photographs among documentation figures (the other train sources hold none; users upload photos)
    Package("opencv-doc", "4.6.0+dfsg-12", "train", "documentation figures: photographs, algorithm outputs, diagrams",
            "Apache-2.0 AND BSD-3-Clause (Debian removed the non-free test photos)", ("usr/share/doc/opencv-doc/",)),
    # validation: astronomical photographs and sky-culture artwork, software screenshots, objects on plain backgrounds
    Package("stellarium-data", "0.22.2-1", "validation", "astronomical photographs, sky-culture artwork, textures",
            "GPL-2+ (nebula images: per-file credits in the package)", ("usr/share/stellarium/",)),
    Package("kstars-data", "5:3.6.2-2", "validation", "application screenshots, sky textures", "GPL-2+ / GFDL",
            ("usr/share/doc/HTML/en/kstars/", "usr/share/kstars/textures/", "usr/share/kstars/kstarslite/"),
            exclude=("usr/share/kstars/skycultures/",)),  # the constellation art stellarium-data ships too
    Package("tuxpaint-stamps-default", "2022.06.04-1", "validation", "objects, animals, food on plain backgrounds",
            "GPL-2", ("usr/share/tuxpaint/stamps/",)),
    # test: documentation screenshots and diagrams; game textures, photographs and renders
    Package("gimp-help-en", "2.10.34-2", "test", "documentation screenshots, dialogs, example photos",
            "GFDL-1.2+", ("usr/share/gimp/2.0/help/en/images/",)),
    Package("supertuxkart-data", "1.4+dfsg-2", "test", "photographic textures, track art, renders, GUI",
            "GPL-3+ / CC-BY-SA / CC0 (per-file, in the package's licence files)", (GAMES + "supertuxkart/data/",)),
)


@dataclass(frozen=True)
class Entry:
    split: str
    source: str
    path: str  # relative to CORPUS_DIR

    def load(self) -> Image.Image:
        return load_rgb(CORPUS_DIR / self.path)


def load_rgb(path: Path, max_side: int = MAX_LOADED_SIDE) -> Image.Image:
    """RGB, transparency on white (as the service does), longest side at most `max_side`."""
    from image_similarity.core.images import to_rgb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = Image.open(path)
        image.draft("RGB", (max_side, max_side))
        image = to_rgb(image)
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(round(image.width * scale), 1), max(round(image.height * scale), 1)),
                             Image.Resampling.LANCZOS)
    return image


def fetch(package: Package) -> None:
    """apt-get download + dpkg-deb -x, once; the pinned version or nothing."""
    if any(package.name.startswith(f) for f in FORBIDDEN):
        raise SystemExit(f"{package.name} must never be used (see the module docstring)")
    if (package.root / ".done").exists():
        return
    debs = CORPUS_DIR / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = [d for d in debs.glob(f"{package.name}_*.deb") if _deb_version(d) == package.version]
    if not found:
        command = ["apt-get", "download", f"{package.name}={package.version}"]
        if subprocess.run(command, cwd=debs, check=False).returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(command, cwd=debs, check=True)
        found = [d for d in debs.glob(f"{package.name}_*.deb") if _deb_version(d) == package.version]
    package.root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(found[0]), str(package.root)], check=True)
    (package.root / ".done").write_text(package.version)


def _deb_version(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def candidates(package: Package) -> list[Path]:
    files = []
    for prefix in package.include:
        base = package.root / prefix
        for path in sorted(base.rglob("*")):
            rel = str(path.relative_to(package.root))
            if (path.suffix.lower() in (".png", ".jpg", ".jpeg") and path.is_file() and not path.is_symlink()
                    and not any(rel.startswith(e) for e in package.exclude)):
                files.append(path)
    return files


def fingerprint(path: Path) -> int | None:
    """The file's 64-bit pHash, or None when it is too small, unreadable or nearly flat."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as probe:
                if min(probe.size) < MIN_SIDE:
                    return None
            image = load_rgb(path, 256)
    except (OSError, ValueError, Image.DecompressionBombError):  # broken or exotic files: not a usable picture
        return None
    grey = np.asarray(image.convert("L").resize((64, 64)), np.float32)
    if grey.std() < MIN_GREY_STD:
        return None
    return int(str(imagehash.phash(image)), 16)


def _sample(files: list[Path], cap: int | None) -> list[Path]:
    if cap is None or len(files) <= cap:
        return files
    keyed = sorted(files, key=lambda p: hashlib.sha256(str(p.name).encode() + str(p.parent.name).encode()).digest())
    return sorted(keyed[:cap])


def build(packages: tuple[Package, ...] = PACKAGES) -> list[Entry]:
    cache_path = CORPUS_DIR / "fingerprints.json"  # pHash per file: a changed package list re-uses them
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    kept: list[Entry] = []
    hashes = np.zeros((0, 8), np.uint8)
    for split in reversed(SPLITS):  # test first: a picture shared with train stays in test only
        for package in (p for p in packages if p.split == split):
            fetch(package)
            files = _sample(candidates(package), package.cap)
            n_before = len(kept)
            for path in files:
                rel = str(path.relative_to(CORPUS_DIR))
                if rel not in cache:
                    cache[rel] = fingerprint(path)
                code = cache[rel]
                if code is None:
                    continue
                code_bytes = np.frombuffer(code.to_bytes(8, "big"), np.uint8)
                if len(hashes) and POPCOUNT[hashes ^ code_bytes].sum(axis=1).min() <= DUPLICATE_BITS:
                    continue
                hashes = np.vstack([hashes, code_bytes])
                kept.append(Entry(split, package.name, rel))
            print(f"{split:10s} {package.name:26s} {len(kept) - n_before:5d} of {len(files)} files", flush=True)
            cache_path.write_text(json.dumps(cache))
    return sorted(kept, key=lambda e: (SPLITS.index(e.split), e.source, e.path))


def manifest_path() -> Path:
    return CORPUS_DIR / "corpus.json"


def corpus_key() -> str:
    """Names the package list: a cache derived from the corpus's entries is valid for this key only."""
    return hashlib.sha256(repr(PACKAGES).encode()).hexdigest()


def load_corpus() -> list[Entry]:
    """The corpus, built on first use (about 10 minutes: downloads, then one pHash per file)."""
    path = manifest_path()
    key = corpus_key()
    if path.exists():
        record = json.loads(path.read_text())
        if record["key"] == key:
            return [Entry(**e) for e in record["entries"]]
    entries = build()
    path.write_text(json.dumps({"key": key, "entries": [e.__dict__ for e in entries]}, indent=0))
    return entries


def split(entries: list[Entry], name: str) -> list[Entry]:
    return [e for e in entries if e.split == name]


def main() -> int:
    entries = load_corpus()
    for name in SPLITS:
        part = split(entries, name)
        sources = sorted({e.source for e in part})
        print(f"{name}: {len(part)} originals from {', '.join(sources)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
