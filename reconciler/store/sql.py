"""The SQLite record store (the default backend).

One connection, shared by threads under a lock (``check_same_thread=False``); WAL mode and
a busy timeout let several processes share the file.  Every write runs in a ``BEGIN
IMMEDIATE`` transaction that also does ``UPDATE store_meta SET serial = serial + 1``, so
the serial counts writes exactly even across processes.  Searches on name, base, type,
format, path, hash and tag are indexed SQL; the full record is kept as JSON in ``config``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import AnyModelConfig, FileState, ModelConfigBase
from reconciler.errors import (
    DuplicateModelException,
    StoreFormatError,
    StoreLockedError,
    UnknownModelException,
)
from reconciler.store import migrations
from reconciler.store._records import (
    coerce_files,
    config_for_add,
    config_for_update,
    decode_record,
    enum_str,
    tag_list,
    to_record,
)
from reconciler.store.base import ModelRecordServiceBase, ViewLinkState
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType

BUSY_TIMEOUT_S = 10.0
SQLITE_MAGIC = b"SQLite format 3\x00"
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


def check_sqlite_file(path: Path) -> None:
    """Raise StoreFormatError unless ``path`` is missing, empty, or a SQLite database."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StoreFormatError(f"{path}: is a directory, not a SQLite record store") from None
    if head and head != SQLITE_MAGIC:
        raise StoreFormatError(f"{path}: not a SQLite database (a .db/.sqlite record store must be one)")


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class ModelRecordServiceSQL(ModelRecordServiceBase):
    """Model records in a SQLite database."""

    def __init__(self, db_path: Path | str | sqlite3.Connection, logger: Any = None) -> None:
        """Open (creating if missing) the database file ``db_path``.

        The seed's ``ModelRecordServiceSQL(db, logger)`` form works too: ``db`` may be an
        open ``sqlite3.Connection`` (as :meth:`from_connection`, with a lock of its own),
        and ``logger`` is accepted and unused (this package logs through ``logging``).
        """
        if isinstance(db_path, sqlite3.Connection):
            self._setup(db_path, threading.Lock(), where="<sqlite connection>", strict=False, owns=False)
            return
        path = Path(db_path)
        check_sqlite_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        try:
            self._setup(conn, threading.Lock(), where=str(path), strict=True, owns=True)
        except BaseException:
            conn.close()
            raise

    @classmethod
    def from_connection(cls, conn: sqlite3.Connection, lock: threading.Lock) -> ModelRecordServiceSQL:
        """A store on an already-open connection, guarded by the caller's ``lock``.

        Meant for keeping records inside an application's own database: other tables may
        exist, ours are created (or migrated) beside them.  :meth:`close` leaves the
        connection open.  Pass a connection made with ``check_same_thread=False`` if
        several threads will use the store.
        """
        self = cls.__new__(cls)
        self._setup(conn, lock, where="<sqlite connection>", strict=False, owns=False)
        return self

    def _setup(self, conn: sqlite3.Connection, lock: threading.Lock, where: str, strict: bool, owns: bool) -> None:
        self._conn = conn
        self._lock = lock
        self._where = where
        self._owns = owns
        with lock:
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA foreign_keys = ON")
                tables = migrations.table_names(conn)
                if strict and tables and "schema_version" not in tables:
                    raise StoreFormatError(
                        f"{where}: SQLite database without the model-reconciler schema "
                        f"(tables: {', '.join(sorted(tables))})"
                    )
                conn.execute("PRAGMA journal_mode = WAL")
                migrations.migrate(conn, where)
                missing = migrations.REQUIRED_TABLES - migrations.table_names(conn)
                if missing:
                    raise StoreFormatError(f"{where}: record store lacks tables {', '.join(sorted(missing))}")
                row = conn.execute("SELECT lineage FROM store_meta WHERE id = 1").fetchone()
            except sqlite3.Error as exc:
                if _is_busy(exc):
                    raise StoreLockedError(f"{where}: record store busy: {exc}") from exc
                raise StoreFormatError(f"{where}: cannot open as a record store: {exc}") from exc
        if row is None:
            raise StoreFormatError(f"{where}: record store has no store_meta row")
        self._lineage: str = row[0]

    # --- plumbing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction that also bumps the serial; rolled back on any error."""
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise self._busy(exc) from exc
                raise
            try:
                yield cur
                cur.execute("UPDATE store_meta SET serial = serial + 1 WHERE id = 1")
                cur.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        cur.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    raise self._busy(exc) from exc
                raise

    def _busy(self, exc: sqlite3.Error) -> StoreLockedError:
        return StoreLockedError(f"{self._where}: record store busy: {exc}")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise self._busy(exc) from exc
                raise

    def _select(self, where: str = "", params: Sequence[Any] = ()) -> list[AnyModelConfig]:
        rows = self._query(f"SELECT config FROM models {where} ORDER BY rowid", params)
        return [decode_record(row[0]) for row in rows]  # validated outside the lock

    @staticmethod
    def _columns(config: ModelConfigBase) -> tuple[Any, ...]:
        return (
            config.name,
            enum_str(config.type),
            enum_str(config.base),
            enum_str(config.format),
            config.path,
            config.hash,
            config.source,
            config.managed_by,
            json.dumps(to_record(config), separators=(",", ":")),
        )

    @staticmethod
    def _check_path_free(cur: sqlite3.Cursor, config: ModelConfigBase) -> None:
        row = cur.execute("SELECT key FROM models WHERE path = ? AND key != ?", (config.path, config.key)).fetchone()
        if row is not None:
            raise DuplicateModelException(f"path {config.path!r} is already recorded as model {row[0]}")

    @staticmethod
    def _write_tags(cur: sqlite3.Cursor, key: str, tags: list[str]) -> None:
        cur.execute("DELETE FROM model_tags WHERE key = ?", (key,))
        cur.executemany("INSERT OR IGNORE INTO model_tags (key, tag) VALUES (?, ?)", [(key, t) for t in tags])

    @staticmethod
    def _write_files(cur: sqlite3.Cursor, key: str, states: Sequence[FileState]) -> None:
        cur.execute("DELETE FROM model_files WHERE key = ?", (key,))
        cur.executemany(
            "INSERT INTO model_files (key, path, size, mtime_ns, imohash, sha256) VALUES (?, ?, ?, ?, ?, ?)",
            [(key, s.path, s.size, s.mtime_ns, s.imohash, s.sha256) for s in states],
        )

    # --- records ------------------------------------------------------------------------

    def add_model(self, key: str, config: ModelConfigBase | dict[str, Any],
                  files: Optional[Sequence[FileState]] = None) -> AnyModelConfig:
        """See :meth:`ModelRecordServiceBase.add_model` (record and file states: one transaction)."""
        record = config_for_add(key, config)
        states = coerce_files(files) if files is not None else None
        with self._transaction() as cur:
            if cur.execute("SELECT 1 FROM models WHERE key = ?", (key,)).fetchone():
                raise DuplicateModelException(f"a model with key {key} already exists")
            self._check_path_free(cur, record)
            cur.execute(
                "INSERT INTO models (key, name, type, base, format, path, hash, source, managed_by, config) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, *self._columns(record)),
            )
            self._write_tags(cur, key, record.tags)
            if states is not None:
                self._write_files(cur, key, states)
        return record

    def update_model(self, key: str, config: ModelConfigBase | dict[str, Any],
                     files: Optional[Sequence[FileState]] = None) -> AnyModelConfig:
        """See :meth:`ModelRecordServiceBase.update_model` (record and file states: one transaction)."""
        states = coerce_files(files) if files is not None else None
        with self._transaction() as cur:
            row = cur.execute("SELECT config FROM models WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise UnknownModelException(f"unknown model key {key}")
            record = config_for_update(key, json.loads(row[0]), config)
            self._check_path_free(cur, record)
            cur.execute(
                "UPDATE models SET name = ?, type = ?, base = ?, format = ?, path = ?, hash = ?, source = ?, "
                f"managed_by = ?, config = ?, updated_at = {_NOW} WHERE key = ?",
                (*self._columns(record), key),
            )
            self._write_tags(cur, key, record.tags)
            if states is not None:
                self._write_files(cur, key, states)
        return record

    def del_model(self, key: str) -> None:
        """See :meth:`ModelRecordServiceBase.del_model`; tags and files go by cascade."""
        with self._transaction() as cur:
            if cur.execute("DELETE FROM models WHERE key = ?", (key,)).rowcount == 0:
                raise UnknownModelException(f"unknown model key {key}")

    def get_model(self, key: str) -> AnyModelConfig:
        """See :meth:`ModelRecordServiceBase.get_model`."""
        found = self._select("WHERE key = ?", (key,))
        if not found:
            raise UnknownModelException(f"unknown model key {key}")
        return found[0]

    def exists(self, key: str) -> bool:
        """See :meth:`ModelRecordServiceBase.exists`."""
        return bool(self._query("SELECT 1 FROM models WHERE key = ?", (key,)))

    def all_models(self) -> list[AnyModelConfig]:
        """See :meth:`ModelRecordServiceBase.all_models`."""
        return self._select()

    # --- searches -----------------------------------------------------------------------

    def search_by_path(self, path: str | Path) -> list[AnyModelConfig]:
        """See :meth:`ModelRecordServiceBase.search_by_path`."""
        return self._select("WHERE path = ?", (str(path),))

    def search_by_attr(
        self,
        model_name: Optional[str] = None,
        base_model: Optional[BaseModelType | str] = None,
        model_type: Optional[ModelType | str] = None,
        model_format: Optional[ModelFormat | str] = None,
    ) -> list[AnyModelConfig]:
        """See :meth:`ModelRecordServiceBase.search_by_attr`."""
        clauses: list[str] = []
        params: list[str] = []
        for column, value in (("name", model_name), ("base", base_model), ("type", model_type), ("format", model_format)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(enum_str(value) or "")
        return self._select(f"WHERE {' AND '.join(clauses)}" if clauses else "", params)

    def search_by_hash(self, hash: str) -> list[AnyModelConfig]:  # noqa: A002 - seed name
        """See :meth:`ModelRecordServiceBase.search_by_hash`."""
        return self._select("WHERE hash = ?", (hash,))

    def search_by_tag(self, tags: Iterable[str]) -> list[AnyModelConfig]:
        """See :meth:`ModelRecordServiceBase.search_by_tag`."""
        wanted = tag_list(tags)
        if not wanted:
            return self._select()
        marks = ", ".join("?" * len(wanted))
        return self._select(
            f"WHERE key IN (SELECT key FROM model_tags WHERE tag IN ({marks}) GROUP BY key HAVING COUNT(*) = ?)",
            (*wanted, len(wanted)),
        )

    # --- store identity -----------------------------------------------------------------

    def version(self) -> str:
        """See :meth:`ModelRecordServiceBase.version`."""
        return str(self._query("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    @property
    def lineage(self) -> str:
        """See :attr:`ModelRecordServiceBase.lineage`."""
        return self._lineage

    @property
    def serial(self) -> int:
        """See :attr:`ModelRecordServiceBase.serial`."""
        return int(self._query("SELECT serial FROM store_meta WHERE id = 1")[0][0])

    # --- per-file states ----------------------------------------------------------------

    def set_files(self, key: str, files: Sequence[FileState]) -> None:
        """See :meth:`ModelRecordServiceBase.set_files`."""
        states = coerce_files(files)
        with self._transaction() as cur:
            if not cur.execute("SELECT 1 FROM models WHERE key = ?", (key,)).fetchone():
                raise UnknownModelException(f"unknown model key {key}")
            self._write_files(cur, key, states)

    def get_files(self, key: str) -> list[FileState]:
        """See :meth:`ModelRecordServiceBase.get_files`."""
        with self._lock:
            if not self._conn.execute("SELECT 1 FROM models WHERE key = ?", (key,)).fetchone():
                raise UnknownModelException(f"unknown model key {key}")
            rows = self._conn.execute(
                "SELECT path, size, mtime_ns, imohash, sha256 FROM model_files WHERE key = ? ORDER BY rowid", (key,)
            ).fetchall()
        return [FileState(path=p, size=s, mtime_ns=m, imohash=i, sha256=h) for p, s, m, i, h in rows]

    def all_files(self) -> dict[str, list[FileState]]:
        """See :meth:`ModelRecordServiceBase.all_files` (one query)."""
        rows = self._query(
            "SELECT m.key, f.path, f.size, f.mtime_ns, f.imohash, f.sha256 "
            "FROM models AS m LEFT JOIN model_files AS f ON f.key = m.key ORDER BY m.rowid, f.rowid"
        )
        out: dict[str, list[FileState]] = {}
        for key, path, size, mtime_ns, imohash, sha256 in rows:
            states = out.setdefault(key, [])
            if path is not None:
                states.append(FileState(path=path, size=size, mtime_ns=mtime_ns, imohash=imohash, sha256=sha256))
        return out

    # --- view links ---------------------------------------------------------------------

    _LINK_COLUMNS = ("view", "path", "model", "model_key", "target", "mode", "link_text", "size", "mtime_ns")

    def view_links(self) -> list[ViewLinkState]:
        """See :meth:`ModelRecordServiceBase.view_links`."""
        rows = self._query(f"SELECT {', '.join(self._LINK_COLUMNS)} FROM view_links ORDER BY rowid")
        return [ViewLinkState(**dict(zip(self._LINK_COLUMNS, row, strict=True))) for row in rows]

    def update_view_links(self, add: Sequence[ViewLinkState] = (),
                          remove: Sequence[tuple[str, str]] = ()) -> None:
        """See :meth:`ModelRecordServiceBase.update_view_links`."""
        with self._transaction() as cur:
            cur.executemany("DELETE FROM view_links WHERE view = ? AND path = ?", list(remove))
            cur.executemany(
                f"INSERT OR REPLACE INTO view_links ({', '.join(self._LINK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(self._LINK_COLUMNS))})",
                [tuple(getattr(link, c) for c in self._LINK_COLUMNS) for link in add],
            )

    # --- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (unless it came from :meth:`from_connection`)."""
        with self._lock:
            if self._owns:
                self._conn.close()


__all__ = ["ModelRecordServiceSQL", "check_sqlite_file"]
