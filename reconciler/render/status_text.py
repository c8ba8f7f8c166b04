"""`status`: every record with its live state."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from reconciler.reconcile.observe import ObservedModel

_STATE_STYLE = {"in_sync": "green", "drifted": "yellow", "missing": "red", "unmanaged": "dim"}


def status_document(observed: list[ObservedModel]) -> dict[str, Any]:
    """The `status -o json` document of CLI.md."""
    models = []
    for item in sorted(observed, key=lambda o: (o.record.managed_by or "", o.record.name)):
        rec = item.record
        models.append({
            "key": rec.key,
            "name": rec.name,
            "type": rec.type.value,
            "base": rec.base.value,
            "format": rec.format.value,
            "path": rec.path,
            "source": rec.source,
            "managed_by": rec.managed_by,
            "state": item.state.value,
            "hash": rec.hash,
            "files_state": item.files_state.value,
        })
    return {"format_version": 1, "models": models}


def status_table(observed: list[ObservedModel]) -> Table:
    """A rich table of the status document."""
    table = Table(show_lines=False)
    for col in ("name", "set", "type", "base", "format", "state", "path"):
        table.add_column(col)
    for row in status_document(observed)["models"]:
        style = _STATE_STYLE.get(row["state"], "")
        table.add_row(row["name"], row["managed_by"] or "-", row["type"], row["base"], row["format"],
                      f"[{style}]{row['state']}[/]", row["path"])
    return table
