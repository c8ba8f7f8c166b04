"""The text plan, read like Terraform's: a symbol per action, reasons, then a summary."""

from __future__ import annotations

from reconciler.reconcile.plan import LINK_SYMBOLS, SYMBOLS, ActionKind, Plan, PlannedAction
from reconciler.render.units import human_bytes

_STYLE = {
    ActionKind.create: "green",
    ActionKind.update: "yellow",
    ActionKind.replace: "magenta",
    ActionKind.repair: "red",
    ActionKind.adopt: "cyan",
    ActionKind.delete: "red",
    ActionKind.warm: "blue",
    ActionKind.view: "cyan",
    ActionKind.error: "bold red",
}


def _action_lines(action: PlannedAction, applied: bool) -> list[str]:
    sym = SYMBOLS[action.action]
    style = _STYLE.get(action.action, "")
    head = f"  [{style}]{sym:>3} {action.action.value:<8}[/{style}] {action.set}/{action.name}"
    if applied and action.result:
        ok = not action.result.startswith("error")
        head += f"  [{'green' if ok else 'bold red'}]{action.result if ok else action.result}[/]"
    lines = [head]
    if action.error:
        lines.append(f"        [bold red]error:[/]  {_esc(action.error)}")
    lines.append(f"        reason: {_esc(action.reason)}")
    if action.source:
        lines.append(f"        source: {_esc(action.source)}")
    if action.install and action.install.dest_path and action.action in (ActionKind.create, ActionKind.adopt):
        lines.append(f"        path:   {_esc(action.install.dest_path)}")
    if action.files:
        total = sum(f.size for f in action.files)
        lines.append(f"        files:  {len(action.files)} ({human_bytes(total)})")
    if action.download_bytes:
        lines.append(f"        download: {human_bytes(action.download_bytes)}")
    for note in action.notes:
        lines.append(f"        [yellow]note:[/] {_esc(note)}")
    for link in action.links:  # a ModelView's files
        what = f"{link.model} (after its install)" if link.pending else _esc(link.path)
        lines.append(f"        {LINK_SYMBOLS.get(link.op, '?'):>3} {what}" + (f"  ({_esc(link.reason)})" if link.reason and not link.pending else ""))
    return lines


def _esc(text: str) -> str:
    return text.replace("[", "\\[")


def render_plan_markup(plan: Plan, applied: bool = False, show_noop: bool = False) -> str:
    """Rich markup for a plan (or an executed plan, with results)."""
    changing = [a for a in plan.actions if a.changes_anything or a.is_error or show_noop]
    lines: list[str] = []
    if not changing:
        lines.append("[green]No changes.[/] The models dir matches the manifests.")
    else:
        if applied:
            lines.append("Apply results:")
        elif plan.has_changes:
            lines.append("reconciler will perform the following actions:")
        else:
            lines.append("Nothing to change, but some models cannot be planned:")
        lines.append("")
        for action in changing:
            lines.extend(_action_lines(action, applied))
            lines.append("")
    s = plan.summary()
    counts = ", ".join(
        f"{s[k.value]} to {k.value}" for k in ActionKind
        if k not in (ActionKind.noop, ActionKind.error) and s[k.value]
    ) or "nothing to change"
    errors = s[ActionKind.error.value]
    failed = f"; [bold red]{errors} error{'s' if errors != 1 else ''}[/] (not planned, see above)" if errors else ""
    lines.append(f"[bold]Plan:[/] {counts}; {s['noop']} unchanged{failed}.")
    lines.append(
        f"Bytes: {human_bytes(plan.download_bytes)} to download, {human_bytes(plan.write_bytes)} to write; "
        f"{human_bytes(plan.free_bytes)} free in {_esc(plan.models_dir)}."
    )
    for warning in plan.warnings:
        lines.append(f"[bold yellow]Warning:[/] {_esc(warning)}")
    return "\n".join(lines)


def render_apply_summary(plan: Plan) -> str:
    """Rich markup for the line after an apply, like Terraform's "Apply complete!"."""
    done: dict[str, int] = {}
    failed = 0
    for action in plan.actions:
        if not action.result or not (action.changes_anything or action.is_error):
            continue
        if action.result.startswith("error"):
            failed += 1
        else:
            done[action.result] = done.get(action.result, 0) + 1
    counts = ", ".join(f"{n} {what}" for what, n in sorted(done.items())) or "nothing changed"
    if failed:
        return f"[bold red]Apply finished with errors:[/] {counts}; {failed} failed."
    return f"[bold green]Apply complete:[/] {counts}."
