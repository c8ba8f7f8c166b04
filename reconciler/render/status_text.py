"""`status`: every record with its live state."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

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
            "warm": warm_document(rec),
        })
    return {"format_version": 1, "models": models}


def warm_document(record: Any) -> Optional[dict[str, Any]]:
    """The last warm-up of a record (None when it was never warmed)."""
    if record.warm_state is None:
        return None
    when = None
    if record.warmed_at is not None:
        when = datetime.fromtimestamp(record.warmed_at, tz=timezone.utc).isoformat(timespec="seconds")
    return {"state": record.warm_state, "at": when, "load_time_s": record.warm_load_time_s,
            "error": record.warm_error, "files_changed_since": record.warm_hash != record.hash}


def _warm_cell(warm: Optional[dict[str, Any]]) -> str:
    if warm is None:
        return "-"
    if warm["state"] == "failed":
        return "[red]warm failed[/]"
    return f"[green]warm[/] {warm['load_time_s']:.2f} s" if warm["load_time_s"] is not None else "[green]warm[/]"


def status_table(observed: list[ObservedModel]) -> Table:
    """A rich table of the status document."""
    from rich.markup import escape

    table = Table(show_lines=False)
    for col in ("name", "set", "type", "base", "format", "state", "warm", "path"):
        table.add_column(col)
    for row in status_document(observed)["models"]:
        style = _STATE_STYLE.get(row["state"], "")
        table.add_row(escape(row["name"]), escape(row["managed_by"] or "-"), row["type"], row["base"], row["format"],
                      f"[{style}]{row['state']}[/]", _warm_cell(row["warm"]), escape(row["path"]))
    return table


def detail_markup(detail: dict[str, Any]) -> str:
    """Rich markup for `status NAME`: one model in detail."""
    from rich.markup import escape

    from reconciler.render.units import human_bytes

    style = _STATE_STYLE.get(detail["state"], "")
    lines = [f"[bold]{escape(detail['name'])}[/]  [{style}]{detail['state']}[/] (files: {detail['files_state']})", ""]
    for key, value in detail["record"].items():
        if value in (None, "", [], {}):
            continue
        lines.append(f"  {key + ':':<22}{escape(str(value))}")
    lines += ["", f"  files ({len(detail['files'])}):"]
    for f in detail["files"]:
        lines.append(f"    {escape(f['path'])}  {human_bytes(f['size'])}  sha256 {f['sha256'] or '-'}"
                     + ("" if f["state"] == "ok" else f"  [red]{f['state']}[/]"))
    meta = detail["metadata"]
    lines.append("")
    if meta is None:
        lines.append("  metadata: none in the metadata store")
    else:
        lines.append("  metadata:")
        for key in ("source_type", "name", "author", "tags", "license", "source_page"):
            if meta.get(key) not in (None, "", []):
                lines.append(f"    {key + ':':<13}{escape(str(meta[key]))}")
    warm = detail["warm"]
    lines.append(f"  last warm-up: {_warm_cell(warm) if warm is None or warm['state'] == 'failed' else _warm_cell(warm)}"
                 + (f" at {warm['at']}" if warm and warm.get("at") else "")
                 + (f"  error: {escape(str(warm['error']))}" if warm and warm.get("error") else ""))
    views = detail["views"]
    lines.append("  views: " + (", ".join(f"{escape(v['path'])} ({v['view']}, {v['mode']})" for v in views) or "none"))
    return "\n".join(lines)
