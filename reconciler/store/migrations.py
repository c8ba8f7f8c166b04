"""Schema migrations of the SQLite record store.

:data:`MIGRATIONS` is an ordered list of ``(version, step)``; ``step(conn)`` brings a
database from the previous version to ``version``.  Opening a database runs every step
above its recorded version, all in ONE transaction, and records each version applied in
``schema_version``.  To change the schema, append ``(2, _v2_whatever)``; never edit a
shipped step.  Steps must not call ``executescript`` (it commits) and must not commit.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence

from reconciler.errors import StoreFormatError

MigrationStep = Callable[[sqlite3.Connection], None]

# Tables every migrated database has; a file lacking them is not one of ours.
REQUIRED_TABLES = frozenset({"schema_version", "store_meta", "models", "model_tags", "model_files"})
# Tables of the metadata store (version 2); checked by ModelMetadataStore, not by the record store,
# so that a test (or plugin) running only the first steps still opens.
METADATA_TABLES = frozenset({"model_metadata", "tags", "metadata_tags"})

_V1_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    )""",
    """CREATE TABLE store_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        lineage TEXT NOT NULL,
        serial INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE models (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        base TEXT NOT NULL,
        format TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        hash TEXT,
        source TEXT,
        managed_by TEXT,
        config TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    )""",
    "CREATE INDEX models_name_base_type ON models (name, base, type)",
    "CREATE INDEX models_base_type ON models (base, type)",
    "CREATE INDEX models_type ON models (type)",
    "CREATE INDEX models_hash ON models (hash)",
    "CREATE INDEX models_managed_by ON models (managed_by)",
    """CREATE TABLE model_tags (
        key TEXT NOT NULL REFERENCES models (key) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (key, tag)
    )""",
    "CREATE INDEX model_tags_tag ON model_tags (tag)",
    """CREATE TABLE model_files (
        key TEXT NOT NULL REFERENCES models (key) ON DELETE CASCADE,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        imohash TEXT NOT NULL,
        sha256 TEXT,
        PRIMARY KEY (key, path)
    )""",
)


def _v1_create_tables(conn: sqlite3.Connection) -> None:
    """Create every table and the store's identity row (a fresh lineage, serial 0)."""
    for statement in _V1_STATEMENTS:
        conn.execute(statement)
    conn.execute("INSERT INTO store_meta (id, lineage, serial) VALUES (1, ?, 0)", (uuid.uuid4().hex,))


_V2_STATEMENTS = (
    """CREATE TABLE model_metadata (
        model_key TEXT PRIMARY KEY REFERENCES models (key) ON DELETE CASCADE,
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        author TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    )""",
    "CREATE INDEX model_metadata_name ON model_metadata (name COLLATE NOCASE)",
    "CREATE INDEX model_metadata_author ON model_metadata (author COLLATE NOCASE)",
    """CREATE TABLE tags (
        tag_id INTEGER PRIMARY KEY,
        tag_text TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE metadata_tags (
        model_key TEXT NOT NULL REFERENCES model_metadata (model_key) ON DELETE CASCADE,
        tag_id INTEGER NOT NULL REFERENCES tags (tag_id) ON DELETE CASCADE,
        PRIMARY KEY (model_key, tag_id)
    )""",
    "CREATE INDEX metadata_tags_tag ON metadata_tags (tag_id)",
    # a tag no model has any more goes too (also when the link went by ON DELETE CASCADE)
    """CREATE TRIGGER metadata_tags_drop_unused AFTER DELETE ON metadata_tags
    BEGIN
        DELETE FROM tags WHERE tag_id = OLD.tag_id
            AND NOT EXISTS (SELECT 1 FROM metadata_tags WHERE tag_id = OLD.tag_id);
    END""",
)


def _v2_metadata_tables(conn: sqlite3.Connection) -> None:
    """Repository metadata (reconciler.store.metadata): one row per model, tags normalised.

    ``model_metadata.model_key`` references ``models.key`` with ON DELETE CASCADE, so
    deleting a record deletes its metadata and (through ``metadata_tags``) its tag links.
    """
    for statement in _V2_STATEMENTS:
        conn.execute(statement)


def _v3_view_links(conn: sqlite3.Connection) -> None:
    """The files ModelViews made in app folders (reconciler.views): prune removes only these."""
    conn.execute("""CREATE TABLE view_links (
        view TEXT NOT NULL,
        path TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        model_key TEXT NOT NULL DEFAULT '',
        target TEXT NOT NULL DEFAULT '',
        mode TEXT NOT NULL,
        link_text TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL DEFAULT 0,
        mtime_ns INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (view, path)
    )""")


MIGRATIONS: list[tuple[int, MigrationStep]] = [
    (1, _v1_create_tables),
    (2, _v2_metadata_tables),
    (3, _v3_view_links),
]


def latest_version(steps: Sequence[tuple[int, MigrationStep]] | None = None) -> int:
    """The schema version this code writes."""
    steps = MIGRATIONS if steps is None else steps
    return steps[-1][0] if steps else 0


def table_names(conn: sqlite3.Connection) -> set[str]:
    """Names of the database's tables."""
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def current_version(conn: sqlite3.Connection) -> int:
    """The recorded schema version; 0 for a database without a ``schema_version`` table."""
    if "schema_version" not in table_names(conn):
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, where: str) -> int:
    """Bring the database to the latest version; return that version.

    Runs under ``BEGIN IMMEDIATE`` so that two processes opening one new database at the
    same time migrate it once.  ``where`` names the database in error messages.
    """
    steps = list(MIGRATIONS)  # read at call time so tests (and plugins) can extend it
    versions = [v for v, _ in steps]
    if versions != sorted(set(versions)):
        raise RuntimeError(f"migration versions must be strictly increasing: {versions}")
    latest = latest_version(steps)
    found = current_version(conn)
    if found == latest:
        return found
    _refuse_newer(found, latest, where)
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = current_version(conn)  # another process may have migrated meanwhile
        _refuse_newer(found, latest, where)
        for version, step in steps:
            if version > found:
                step(conn)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return latest


def _refuse_newer(found: int, latest: int, where: str) -> None:
    if found > latest:
        raise StoreFormatError(
            f"{where}: record store schema version {found} was written by a newer model-reconciler "
            f"(this one knows up to {latest}); upgrade model-reconciler"
        )


__all__ = ["METADATA_TABLES", "MIGRATIONS", "MigrationStep", "REQUIRED_TABLES", "current_version", "latest_version", "migrate", "table_names"]
