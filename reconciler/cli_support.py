"""Plumbing of the `reconciler` command: global options, one-line errors, consoles, and the
values shell completion offers.  :mod:`reconciler.cli` holds the commands themselves.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, TypeVar

import click

from reconciler.errors import ReconcilerError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR, EXIT_CHANGES = 1, 2


class CliState:
    """Global options, resolved into AppSettings on first use."""

    def __init__(self, models_dir: Optional[Path], db: Optional[Path], config: Optional[Path],
                 lock: Optional[Path], verbose: int, quiet: bool) -> None:
        self.models_dir, self.db, self.config, self.lock = models_dir, db, config, lock
        self.verbose, self.quiet = verbose, quiet
        self._settings: Any = None

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from reconciler.settings import load_settings

            self._settings = load_settings(
                config_file=self.config, models_dir=self.models_dir, db=self.db, lock=self.lock
            )
        return self._settings


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


def stdout_console() -> Any:
    from rich.console import Console

    # piped output (CI logs, `| less`) gets wide lines instead of rich's 80-column default
    return Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 160)


def fail(message: str) -> None:
    """Print one unwrapped error line on stderr."""
    text = " ".join(str(message).split("\n"))
    sys.stderr.write(f"Error: {text}\n")
    sys.stderr.flush()


def failure_line(action: Any) -> str:
    """The stderr line of one failed action: a plan error as the plan worded it; an action
    that failed while running, with what it was doing to which model."""
    if action.is_error:
        return str(action.error)
    message = str(action.result or "").removeprefix("error: ")
    return f"{action.action.value} {action.set}/{action.name}: {message}"


def handle_errors(func: F) -> F:
    """Turn ReconcilerError (and OSError) into one stderr line and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state: Optional[CliState] = click.get_current_context().find_object(CliState)
        try:
            return func(*args, **kwargs)
        except (ReconcilerError, OSError) as exc:
            if state is not None and state.verbose:
                import traceback

                traceback.print_exc()
            fail(str(exc))
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


def host_port(_ctx: Any, _param: Any, value: Optional[str]) -> Optional[tuple[str, int]]:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def completion_state(ctx: click.Context) -> CliState:
    root = ctx.find_root()
    p = root.params
    return CliState(p.get("models_dir"), p.get("db"), p.get("config"), p.get("lock"), 0, True)


def _complete_records(ctx: click.Context, incomplete: str, field: str) -> list[Any]:
    """Model or set names from the record store, for shell completion (never an error)."""
    from click.shell_completion import CompletionItem

    try:
        from reconciler.reconcile.services import open_store

        store, _ = open_store(completion_state(ctx).settings, create=False)
        try:
            values = {getattr(rec, field) or "" for rec in store.all_models()}
        finally:
            store.close()
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [CompletionItem(v) for v in sorted(values) if v and v.startswith(incomplete)]


def complete_model_names(ctx: click.Context, _param: Any, incomplete: str) -> list[Any]:
    return _complete_records(ctx, incomplete, "name")


def complete_set_names(ctx: click.Context, _param: Any, incomplete: str) -> list[Any]:
    return _complete_records(ctx, incomplete, "managed_by")
