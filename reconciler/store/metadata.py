"""ModelMetadataStore: repository metadata beside the model records, in the same SQLite file.

The tables come from migration step 2 (:mod:`reconciler.store.migrations`):
``model_metadata`` (one row per model: type, name, author and the metadata's JSON),
``tags`` (each tag text once) and ``metadata_tags`` (which model has which tag); a
trigger drops a tag once no model has it.
``model_metadata.model_key`` references ``models.key`` ON DELETE CASCADE: deleting a model
record deletes its metadata and its tag links, so metadata never outlives its record.

The store shares the record store's connection and lock (one connection per database
file keeps SQLite's locking simple), and writes through the record store's transaction
helper, so a metadata write bumps the store's ``serial`` like any other write.

Decisions:

* Tags are matched exactly (case-sensitive), as in the record store's ``search_by_tag``;
  ``search_by_tag`` needs *all* the given tags; no tags at all returns every key.
* ``search_by_name`` and ``search_by_author`` match the whole string, ignoring case.
* Searches return a *set* of model keys, as the seed's ``search_by_tag(tags: Set[str]) -> Set[str]``
  says (use them with the record store: ``[records.get_model(k) for k in matches]``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

from pydantic import ValidationError

from reconciler.errors import DuplicateModelException, StoreFormatError, UnknownModelException
from reconciler.metadata import AnyModelRepoMetadata, AnyModelRepoMetadataValidator, ModelMetadataBase
from reconciler.store import migrations
from reconciler.store.sql import ModelRecordServiceSQL

MetadataInput = Union[ModelMetadataBase, dict[str, Any], str]
"""A metadata object, its dict, or its JSON."""


def _coerce(metadata: MetadataInput) -> AnyModelRepoMetadata:
    try:
        if isinstance(metadata, str):
            return AnyModelRepoMetadataValidator.validate_json(metadata)
        if isinstance(metadata, ModelMetadataBase):
            metadata = metadata.model_dump(mode="json")
        return AnyModelRepoMetadataValidator.validate_python(metadata)
    except ValidationError as exc:
        raise ValueError(f"invalid model metadata: {exc.errors()[0]['msg']}") from exc


class ModelMetadataStore:
    """Metadata of installed models, keyed by model key; see the module docstring."""

    def __init__(self, store: ModelRecordServiceSQL | Path | str) -> None:
        """Use ``store``'s database (a :class:`ModelRecordServiceSQL`, or a ``.db`` path to open).

        A store opened here from a path is closed by :meth:`close`; a store passed in is not.
        """
        if isinstance(store, ModelRecordServiceSQL):
            self._records, self._owns = store, False
        else:
            self._records, self._owns = ModelRecordServiceSQL(store), True
        missing = migrations.METADATA_TABLES - set(
            row[0] for row in self._records._query("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        if missing:
            if self._owns:
                self._records.close()
            raise StoreFormatError(
                f"{self._records._where}: record store lacks the metadata tables {', '.join(sorted(missing))}"
            )

    @property
    def record_store(self) -> ModelRecordServiceSQL:
        """The record store whose database this store shares."""
        return self._records

    # --- writes ------------------------------------------------------------------------

    def add_metadata(self, model_key: str, metadata: MetadataInput) -> AnyModelRepoMetadata:
        """Attach ``metadata`` to the model ``model_key``.

        Raises UnknownModelException when no record has that key, DuplicateModelException
        when the model already has metadata (use :meth:`update_metadata`).
        """
        meta = _coerce(metadata)
        with self._records._transaction() as cur:
            self._require_model(cur, model_key)
            if cur.execute("SELECT 1 FROM model_metadata WHERE model_key = ?", (model_key,)).fetchone():
                raise DuplicateModelException(f"model {model_key} already has metadata")
            cur.execute(
                "INSERT INTO model_metadata (model_key, type, name, author, metadata) VALUES (?, ?, ?, ?, ?)",
                (model_key, meta.type, meta.name, meta.author, meta.model_dump_json()),
            )
            self._write_tags(cur, model_key, meta.tags)
        return meta

    def update_metadata(self, model_key: str, metadata: MetadataInput) -> AnyModelRepoMetadata:
        """Replace the metadata of ``model_key``; UnknownModelException when it has none."""
        meta = _coerce(metadata)
        with self._records._transaction() as cur:
            cur.execute(
                "UPDATE model_metadata SET type = ?, name = ?, author = ?, metadata = ?, "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE model_key = ?",
                (meta.type, meta.name, meta.author, meta.model_dump_json(), model_key),
            )
            if cur.rowcount == 0:
                raise UnknownModelException(f"no metadata for model key {model_key}")
            cur.execute("DELETE FROM metadata_tags WHERE model_key = ?", (model_key,))
            self._write_tags(cur, model_key, meta.tags)
        return meta

    def del_metadata(self, model_key: str) -> None:
        """Remove the metadata of ``model_key``; UnknownModelException when it has none."""
        with self._records._transaction() as cur:
            cur.execute("DELETE FROM model_metadata WHERE model_key = ?", (model_key,))
            if cur.rowcount == 0:
                raise UnknownModelException(f"no metadata for model key {model_key}")

    # --- reads -------------------------------------------------------------------------

    def get_metadata(self, model_key: str) -> AnyModelRepoMetadata:
        """The metadata of ``model_key``; UnknownModelException when it has none."""
        rows = self._records._query("SELECT metadata FROM model_metadata WHERE model_key = ?", (model_key,))
        if not rows:
            raise UnknownModelException(f"no metadata for model key {model_key}")
        return AnyModelRepoMetadataValidator.validate_json(rows[0][0])

    def list_all_metadata(self) -> list[tuple[str, AnyModelRepoMetadata]]:
        """Every (model key, metadata) pair, in insertion order."""
        rows = self._records._query("SELECT model_key, metadata FROM model_metadata ORDER BY rowid")
        return [(key, AnyModelRepoMetadataValidator.validate_json(text)) for key, text in rows]

    def search_by_tag(self, tags: Iterable[str] | str) -> set[str]:
        """Keys of the models whose metadata has *all* of ``tags`` (a bare string is one tag)."""
        wanted = [tags] if isinstance(tags, str) else list(dict.fromkeys(tags))
        if not wanted:
            return {row[0] for row in self._records._query("SELECT model_key FROM model_metadata")}
        marks = ", ".join("?" * len(wanted))
        rows = self._records._query(
            "SELECT m.model_key FROM model_metadata AS m WHERE m.model_key IN ("
            " SELECT mt.model_key FROM metadata_tags AS mt JOIN tags AS t ON t.tag_id = mt.tag_id"
            f" WHERE t.tag_text IN ({marks}) GROUP BY mt.model_key HAVING COUNT(*) = ?"
            ")",
            (*wanted, len(wanted)),
        )
        return {row[0] for row in rows}

    def search_by_author(self, author: str) -> set[str]:
        """Keys of the models by ``author`` (whole string, any case)."""
        rows = self._records._query("SELECT model_key FROM model_metadata WHERE author = ? COLLATE NOCASE", (author,))
        return {row[0] for row in rows}

    def search_by_name(self, name: str) -> set[str]:
        """Keys of the models whose repository name is ``name`` (whole string, any case)."""
        rows = self._records._query("SELECT model_key FROM model_metadata WHERE name = ? COLLATE NOCASE", (name,))
        return {row[0] for row in rows}

    def all_tags(self) -> list[str]:
        """Every tag some model's metadata has, sorted."""
        return [row[0] for row in self._records._query("SELECT tag_text FROM tags ORDER BY tag_text")]

    # --- plumbing ----------------------------------------------------------------------

    @staticmethod
    def _require_model(cur: sqlite3.Cursor, model_key: str) -> None:
        if not cur.execute("SELECT 1 FROM models WHERE key = ?", (model_key,)).fetchone():
            raise UnknownModelException(f"unknown model key {model_key}")

    @staticmethod
    def _write_tags(cur: sqlite3.Cursor, model_key: str, tags: Iterable[str]) -> None:
        for tag in sorted(set(tags)):
            cur.execute("INSERT OR IGNORE INTO tags (tag_text) VALUES (?)", (tag,))
            cur.execute(
                "INSERT OR IGNORE INTO metadata_tags (model_key, tag_id) "
                "SELECT ?, tag_id FROM tags WHERE tag_text = ?",
                (model_key, tag),
            )

    def close(self) -> None:
        """Close the record store if this object opened it."""
        if self._owns:
            self._records.close()

    def __enter__(self) -> ModelMetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MetadataInput", "ModelMetadataStore"]
