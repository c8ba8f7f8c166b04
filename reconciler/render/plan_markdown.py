"""``plan -o markdown``: the plan as a pull-request comment (GitHub-flavoured Markdown).

Layout: a marker comment (``<!-- reconciler-plan -->``, for CI that updates one comment in
place), a title, the summary line, a table of the actions that change something (symbol,
set/name, action, reason, download size), warnings (prune guards, disk space), errors,
notes (variant fallbacks, prober disagreements), then each model's files in a collapsible
``<details>`` block.  The whole comment stays under GitHub's 65,536-character limit: past
it, the last blocks are left out and a line says how many and how many characters.
"""

from __future__ import annotations

import html

from reconciler.reconcile.plan import SYMBOLS, ActionKind, Plan, PlannedAction
from reconciler.render.units import human_bytes

GITHUB_COMMENT_LIMIT = 65_536
MARKER = "<!-- reconciler-plan -->"
_RESERVE = 400  # room kept for the truncation line


def _cell(text: object) -> str:
    """Text safe inside a table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def _code(text: object) -> str:
    """Inline code that survives backticks in the text."""
    value = " ".join(str(text).split())
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}".replace("|", "\\|")


def _summary_line(plan: Plan) -> str:
    s = plan.summary()
    counts = ", ".join(
        f"{s[k.value]} to {k.value}" for k in ActionKind if k not in (ActionKind.noop, ActionKind.error) and s[k.value]
    ) or "nothing to change"
    errors = s[ActionKind.error.value]
    failed = f"; **{errors} error{'s' if errors != 1 else ''}**" if errors else ""
    free = "" if plan.free_bytes is None else f"; {human_bytes(plan.free_bytes)} free in the models dir"
    return (
        f"**Plan: {counts}; {s['noop']} unchanged{failed}.** "
        f"{human_bytes(plan.download_bytes)} to download, {human_bytes(plan.write_bytes)} to write{free}."
    )


def _warnings(plan: Plan) -> list[str]:
    lines = [f"- :warning: {_cell(w)}" for w in plan.warnings]
    if plan.deletions_blocked_by and not any("--" in w for w in plan.warnings):
        flags = ", ".join(_code(f) for f in plan.deletions_blocked_by)
        lines.append(f"- :warning: apply stops before deleting anything unless run with {flags}")
    if plan.free_bytes is not None and plan.write_bytes > plan.free_bytes and not plan.warnings:
        lines.append(f"- :warning: the plan writes {human_bytes(plan.write_bytes)} but only "
                     f"{human_bytes(plan.free_bytes)} is free: apply will refuse")
    return lines


def _row(action: PlannedAction) -> str:
    download = human_bytes(action.download_bytes) if action.download_bytes else ""
    return (f"| {_code(SYMBOLS[action.action])} | {_code(f'{action.set}/{action.name}')} | {action.action.value} "
            f"| {_cell(action.reason)} | {download} |")


def _details(action: PlannedAction) -> str:
    total = sum(f.size for f in action.files)
    name = html.escape(f"{action.set}/{action.name}")
    lines = [
        "<details>",
        f"<summary><code>{name}</code>: {action.action.value}, {len(action.files)} file(s), "
        f"{html.escape(human_bytes(total))}</summary>",
        "",
    ]
    if action.source:
        lines.append(f"source: {_code(action.source)}")
        lines.append("")
    lines += ["| file | size |", "| --- | ---: |"]
    lines += [f"| {_code(f.path)} | {human_bytes(f.size)} |" for f in action.files]
    lines += ["", "</details>"]
    return "\n".join(lines)


def render_plan_markdown(plan: Plan, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The plan as one pull-request comment of at most ``limit`` characters."""
    changing = [a for a in plan.ordered_actions() if a.changes_anything or a.is_error]
    head = [MARKER, "### reconciler plan", "", _summary_line(plan)]
    if not changing:
        head += ["", "No changes. The models dir matches the manifests."]
    # blocks in the order they are dropped last-first when the comment grows too long
    blocks: list[tuple[str, str]] = []  # (section heading to print before the first of its kind, text)
    for line in _warnings(plan):
        blocks.append(("#### Warnings", line))
    for action in plan.errors:
        blocks.append(("#### Errors", f"- {_code(f'{action.set}/{action.name}')}: {_cell(action.error or '')}"))
    rows = [a for a in changing if not a.is_error]
    for action in rows:
        blocks.append(("| | model | action | reason | download |\n| --- | --- | --- | --- | ---: |", _row(action)))
    for action in changing:
        for note in action.notes:
            blocks.append(("#### Notes", f"- {_code(f'{action.set}/{action.name}')}: {_cell(note)}"))
    with_files = [a for a in changing if a.files]
    for action in with_files:
        blocks.append(("#### Files", _details(action)))

    out = "\n".join(head)
    section = None
    left_out = left_chars = 0
    for heading, text in blocks:
        piece = ("\n\n" + heading + "\n" if heading != section else "\n") + text
        if heading.startswith("#### Files") and heading == section:
            piece = "\n\n" + text
        if left_out or len(out) + len(piece) + _RESERVE > limit:
            left_out += 1
            left_chars += len(piece)
            continue
        out += piece
        section = heading
    if left_out:
        out += (f"\n\n> **Truncated:** {left_out} more line(s) and block(s) ({left_chars:,} characters) "
                f"left out to stay under GitHub's {limit:,}-character comment limit; "
                "run `reconciler plan` for the whole plan.")
    return out + "\n"
