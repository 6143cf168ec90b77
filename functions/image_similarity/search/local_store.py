"""The local collection store: SQLite holds every item (id, vector, metadata) and is the only truth; each process keeps
a FAISS index of each collection it serves, built from SQLite and caught up with it before every search.

- Durability: SQLite in WAL mode with `synchronous=FULL`, so a write is acknowledged only after its commit is fsync'd;
  a process killed mid-write loses nothing it acknowledged (tests/search/test_local_crash.py).
- Several processes (the server's workers, the CLI) share one data directory: SQLite serialises the writers, and every
  item row gets a new, never-reused `key` (AUTOINCREMENT); replaced or deleted keys are logged in `removed`. A
  process's index remembers the last key and the last removal it has applied, and applies the rest before it searches.
- Exact search (a flat scan) while a collection is small, below `exact_below` items; an HNSW graph above, built once
  when a collection crosses that size. HNSW cannot delete: removed keys are left out of its searches by a selector,
  and the graph is rebuilt once a quarter of it is dead. bench/SEARCH.md has the crossing point, the recall of the
  graph against exact search, and why FAISS rather than USearch.
- A graph is saved beside the database (`index/<collection number>-<last key>-<last removal>.faiss`, its dead keys in
  a `.dead.npy` written first) after each build and whenever a quarter of it has changed since, so a restart loads it
  and replays only the rest.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from image_similarity.core.score import score
from image_similarity.core.settings import cpu_count
from image_similarity.search.store import CollectionInfo, Match, item_not_found, not_found, version_mismatch

# Below this many items a search is exact (a scan of every vector); above it, the HNSW graph answers. Measured by
# `make bench-search` (bench/SEARCH.md): the exact scan passes 1 ms per query around this size on this machine.
EXACT_BELOW = 20_000
# HNSW settings (FAISS's names). At 1,000,000 of the bench's embeddings, M=16 / efConstruction=40 reached recall@10
# 0.77 against exact search; this wider graph reaches 0.991 at efSearch 128, p95 3.3 ms (bench/SEARCH.md).
HNSW_M = 32
EF_CONSTRUCTION = 64
EF_SEARCH = 128
# The graph is saved again once this share of it has changed, and rebuilt once this share of it is dead.
RESAVE_SHARE = 0.25
REBUILD_DEAD_SHARE = 0.25
DATABASE = "collections.sqlite3"
READ_CHUNK = 50_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    cid INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, model_version TEXT NOT NULL,
    dim INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS items (
    key INTEGER PRIMARY KEY AUTOINCREMENT, cid INTEGER NOT NULL, id TEXT NOT NULL, vector BLOB NOT NULL,
    metadata TEXT NOT NULL, UNIQUE (cid, id));
CREATE INDEX IF NOT EXISTS items_by_collection ON items (cid, key);
CREATE TABLE IF NOT EXISTS removed (seq INTEGER PRIMARY KEY AUTOINCREMENT, cid INTEGER NOT NULL, key INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_by_collection ON removed (cid, seq);
"""


def default_data_dir(env: dict[str, str] | None = None) -> Path:
    """`IMAGE_SIMILARITY_DATA_DIR`, else the user's data directory (XDG), else /tmp on AWS Lambda (the only writable
    place there, and lost with the execution environment: deployed stacks use S3 Vectors)."""
    env = dict(os.environ if env is None else env)
    if env.get("IMAGE_SIMILARITY_DATA_DIR"):
        return Path(env["IMAGE_SIMILARITY_DATA_DIR"])
    if env.get("AWS_LAMBDA_FUNCTION_NAME"):
        return Path("/tmp/image-similarity")
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "image-similarity"


@dataclass
class _Collection:
    cid: int
    name: str
    model_version: str
    dim: int
    count: int


class _LiveIndex:
    """One collection's vectors in this process, and how far into the database's history they are.

    `graph` False: a flat index (exact search, real deletes). True: HNSW, with `dead` keys filtered out of searches.
    """

    def __init__(self, index: faiss.Index, graph: bool, last_key: int = 0, last_removed: int = 0,
                 dead: set[int] | None = None):
        self.index = index
        self.graph = graph
        self.last_key = last_key
        self.last_removed = last_removed
        self.dead = dead or set()
        self.changed_since_save = 0
        self.name = ""
        self.lock = threading.Lock()
        self._params: faiss.SearchParameters | None = None

    @classmethod
    def flat(cls, dim: int) -> _LiveIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), graph=False)

    @classmethod
    def hnsw(cls, dim: int) -> _LiveIndex:
        graph = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = EF_CONSTRUCTION
        return cls(faiss.IndexIDMap2(graph), graph=True)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(vectors, keys)

    def remove(self, keys: list[int]) -> None:
        if self.graph:
            self.dead.update(keys)
            self._params = None
        else:
            self.index.remove_ids(np.asarray(keys, dtype=np.int64))  # keys it never held are skipped

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, cosines), best first; fewer than k when the collection is smaller."""
        # One query is one thread's work: OpenMP teams only spin against the server's other threads and workers (a
        # flat search over 10,000 vectors took 60 ms with two OpenMP threads on a busy 2-CPU machine, 0.8 ms with
        # one). The setting is per calling thread, so it is made here, where server threads call in.
        faiss.omp_set_num_threads(1)
        params = None
        if self.graph:
            if self._params is None:
                selector = (faiss.IDSelectorNot(faiss.IDSelectorBatch(np.fromiter(self.dead, np.int64)))
                            if self.dead else None)
                self._params = faiss.SearchParametersHNSW(efSearch=max(EF_SEARCH, k), sel=selector)
                self._params.selector_ref = selector  # the parameters do not keep the selector alive
            params = self._params
        cosines, keys = self.index.search(query[None], k, params=params)
        found = keys[0] >= 0
        return keys[0][found], cosines[0][found]


class LocalStore:
    """A `CollectionStore` in one folder; safe to share between threads, and between processes on one folder."""

    def __init__(self, folder: Path, exact_below: int = EXACT_BELOW):
        self.folder = Path(folder)
        self.exact_below = exact_below
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "index").mkdir(exist_ok=True)
        self._local = threading.local()
        self._live: dict[int, _LiveIndex] = {}
        self._live_lock = threading.Lock()
        self._db().executescript(SCHEMA)

    # -- the protocol -------------------------------------------------------------------------------------------

    def describe(self, name: str) -> CollectionInfo:
        found = self._find(self._db(), name)
        return CollectionInfo(found.name, found.count, found.model_version)

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]],
               model_version: str) -> int:
        latest = {item_id: row for row, item_id in enumerate(ids)}  # the last of repeated ids wins, as in a loop
        rows = [(item_id, np.ascontiguousarray(vectors[row], dtype="<f4").tobytes(), json.dumps(metadata[row]))
                for item_id, row in latest.items()]
        with self._write() as db:
            found = self._find(db, name, missing_ok=True)
            if found is None:
                cursor = db.execute("INSERT INTO collections (name, model_version, dim) VALUES (?, ?, ?)",
                                    (name, model_version, vectors.shape[1]))
                found = _Collection(cursor.lastrowid, name, model_version, vectors.shape[1], 0)
            elif found.model_version != model_version:
                raise version_mismatch(name, found.model_version, model_version)
            replaced = 0
            for start in range(0, len(rows), 500):
                chunk = [item_id for item_id, _, _ in rows[start:start + 500]]
                marks = ",".join("?" * len(chunk))
                cursor = db.execute(f"INSERT INTO removed (cid, key) SELECT cid, key FROM items "
                                    f"WHERE cid = ? AND id IN ({marks})", (found.cid, *chunk))
                replaced += cursor.rowcount
                db.execute(f"DELETE FROM items WHERE cid = ? AND id IN ({marks})", (found.cid, *chunk))
            db.executemany("INSERT INTO items (cid, id, vector, metadata) VALUES (?, ?, ?, ?)",
                           [(found.cid, *row) for row in rows])
            db.execute("UPDATE collections SET count = count + ? WHERE cid = ?", (len(rows) - replaced, found.cid))
        return len(rows)

    def search(self, name: str, vector: np.ndarray, k: int, min_similarity: float,
               model_version: str) -> list[Match]:
        db = self._db()
        found = self._find(db, name)
        if found.model_version != model_version:
            raise version_mismatch(name, found.model_version, model_version)
        live = self._caught_up(db, found)
        query = np.ascontiguousarray(vector, dtype=np.float32)
        with live.lock:
            if live.index.ntotal == 0:
                return []
            keys, cosines = live.search(query, k)
        scores = score(cosines)
        wanted = [(int(key), float(score)) for key, score in zip(keys, scores, strict=True) if score >= min_similarity]
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = {key: (item_id, meta) for key, item_id, meta in db.execute(
            f"SELECT key, id, metadata FROM items WHERE key IN ({marks})", [key for key, _ in wanted])}
        # An item deleted since the catch-up has no row any more: it is left out.
        return [Match(rows[key][0], score, json.loads(rows[key][1])) for key, score in wanted if key in rows]

    def delete_item(self, name: str, item_id: str) -> None:
        with self._write() as db:
            found = self._find(db, name)
            cursor = db.execute("INSERT INTO removed (cid, key) SELECT cid, key FROM items WHERE cid = ? AND id = ?",
                                (found.cid, item_id))
            if cursor.rowcount == 0:
                raise item_not_found(name)
            db.execute("DELETE FROM items WHERE cid = ? AND id = ?", (found.cid, item_id))
            db.execute("UPDATE collections SET count = count - 1 WHERE cid = ?", (found.cid,))

    def delete_collection(self, name: str) -> None:
        with self._write() as db:
            found = self._find(db, name)
            for table in ("items", "removed", "collections"):
                db.execute(f"DELETE FROM {table} WHERE cid = ?", (found.cid,))
        with self._live_lock:
            self._live.pop(found.cid, None)
        for saved in self._saved(found.cid):
            saved.unlink(missing_ok=True)
            saved.with_suffix(".dead.npy").unlink(missing_ok=True)

    # -- the in-process index -----------------------------------------------------------------------------------

    def build(self, name: str) -> None:
        """Bring this process's index of `name` up to date now (a search would do it first anyway)."""
        db = self._db()
        self._caught_up(db, self._find(db, name))

    def _caught_up(self, db: sqlite3.Connection, found: _Collection) -> _LiveIndex:
        with self._live_lock:
            live = self._live.get(found.cid)
            if live is None:
                # A collection deleted by another process and created again under its name has a new number: the
                # index of the old one goes.
                for stale in [cid for cid, other in self._live.items() if other.name == found.name]:
                    del self._live[stale]
                live = self._live[found.cid] = self._load_saved(found) or _LiveIndex.flat(found.dim)
                live.name = found.name
        with live.lock:
            if self._live.get(found.cid) is not live:  # another thread replaced it while this one waited
                return self._caught_up(db, found)
            db.execute("BEGIN")  # one snapshot of the database for every read below
            try:
                if (not live.graph and found.count >= self.exact_below) or (live.graph and (
                        len(live.dead) > REBUILD_DEAD_SHARE * max(1, live.index.ntotal))):
                    live = self._live[found.cid] = self._build_graph(db, found)
                    live.name = found.name
                    self._save(found.cid, live)
                    return live
                self._apply_changes(db, found, live)
            finally:
                db.execute("COMMIT")
            if live.graph and live.changed_since_save > RESAVE_SHARE * max(1, live.index.ntotal):
                self._save(found.cid, live)
        return live

    def _apply_changes(self, db: sqlite3.Connection, found: _Collection, live: _LiveIndex) -> None:
        removed = db.execute("SELECT seq, key FROM removed WHERE cid = ? AND seq > ? ORDER BY seq",
                             (found.cid, live.last_removed)).fetchall()
        for keys, vectors in self._rows_after(db, found, live.last_key):
            live.add(keys, vectors)
            live.last_key = int(keys[-1])
            live.changed_since_save += len(keys)
        if removed:
            live.remove([key for _, key in removed])
            live.last_removed = removed[-1][0]
            live.changed_since_save += len(removed)

    def _build_graph(self, db: sqlite3.Connection, found: _Collection) -> _LiveIndex:
        """A new HNSW graph of every item, read in the caller's database snapshot, built on every CPU."""
        live = _LiveIndex.hnsw(found.dim)
        row = db.execute("SELECT MAX(seq) FROM removed WHERE cid = ?", (found.cid,)).fetchone()
        live.last_removed = row[0] or 0
        faiss.omp_set_num_threads(cpu_count())  # this thread's OpenMP team; searches set theirs back to one
        for keys, vectors in self._rows_after(db, found, 0):
            live.add(keys, vectors)
            live.last_key = int(keys[-1])
        return live

    def _rows_after(self, db: sqlite3.Connection, found: _Collection, last_key: int
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            rows = db.execute("SELECT key, vector FROM items WHERE cid = ? AND key > ? ORDER BY key LIMIT ?",
                              (found.cid, last_key, READ_CHUNK)).fetchall()
            if not rows:
                return
            keys = np.fromiter((key for key, _ in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(blob for _, blob in rows), dtype="<f4").reshape(len(rows), found.dim)
            yield keys, vectors
            last_key = int(keys[-1])

    def _saved(self, cid: int) -> list[Path]:
        return sorted(self.folder.glob(f"index/{cid}-*-*.faiss"),
                      key=lambda p: tuple(int(part) for part in p.stem.split("-")[1:]))

    def _load_saved(self, found: _Collection) -> _LiveIndex | None:
        saved = self._saved(found.cid)
        if not saved:
            return None
        try:
            index = faiss.read_index(str(saved[-1]))
            dead = set(np.load(saved[-1].with_suffix(".dead.npy")).tolist())
        except (OSError, RuntimeError, ValueError):  # a torn or foreign file: rebuild from the database instead
            return None
        if index.d != found.dim:
            return None
        _, last_key, last_removed = (int(part) for part in saved[-1].stem.split("-"))
        return _LiveIndex(index, graph=True, last_key=last_key, last_removed=last_removed, dead=dead)

    def _save(self, cid: int, live: _LiveIndex) -> None:
        target = self.folder / "index" / f"{cid}-{live.last_key}-{live.last_removed}.faiss"
        partial = f".{os.getpid()}.{threading.get_ident()}.partial"
        dead = target.with_suffix(".dead.npy")
        np.save(target.with_suffix(partial + ".npy"), np.fromiter(live.dead, np.int64, len(live.dead)))
        os.replace(target.with_suffix(partial + ".npy"), dead)
        faiss.write_index(live.index, str(target.with_suffix(partial)))
        os.replace(target.with_suffix(partial), target)  # last: a saved index always has its dead keys beside it
        live.changed_since_save = 0
        for older in self._saved(cid)[:-1]:
            older.unlink(missing_ok=True)
            older.with_suffix(".dead.npy").unlink(missing_ok=True)

    # -- the database -------------------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        """One connection per thread (sqlite3 connections are not shared between threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.folder / DATABASE, timeout=60.0, isolation_level=None)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # fsync the WAL on every commit: acknowledged = durable
            db.execute("PRAGMA busy_timeout = 60000")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the database's write lock from its start (no upgrade deadlocks)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _find(db: sqlite3.Connection, name: str, missing_ok: bool = False) -> _Collection | None:
        row = db.execute("SELECT cid, name, model_version, dim, count FROM collections WHERE name = ?",
                         (name,)).fetchone()
        if row is None and not missing_ok:
            raise not_found(name)
        return None if row is None else _Collection(*row)
