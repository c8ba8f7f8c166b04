"""The `reconciler` command: parse, call a service, render. Nothing else lives here.

The contract (names, flags, exit codes, JSON) is ../shared/CLI.md.  Errors are one line on
stderr and exit 1; ``-v`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Optional

import click

from reconciler.cli_support import (
    EXIT_CHANGES,
    EXIT_ERROR,
    CliState,
    complete_model_names,
    complete_set_names,
    fail,
    failure_line,
    handle_errors,
    host_port,
    stderr_console,
    stdout_console,
)


def stdin_is_terminal() -> bool:
    """Whether a person can answer a prompt (apply asks for 'yes' only then)."""
    return sys.stdin.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--models-dir", type=click.Path(path_type=Path), envvar="RECONCILER_MODELS_DIR",
              help="Root of installed models [default: ./models].")
@click.option("--db", type=click.Path(path_type=Path), envvar="RECONCILER_DB",
              help="Record store: .db (SQLite) or .yaml [default: <models-dir>/.reconciler/records.db].")
@click.option("--config", type=click.Path(path_type=Path), envvar="RECONCILER_CONFIG",
              help="Settings file (YAML) [default: ./reconciler.yaml if present].")
@click.option("--lock", type=click.Path(path_type=Path), envvar="RECONCILER_LOCK",
              help="Lock file [default: ./reconciler.lock].")
@click.option("-v", "--verbose", count=True, help="More logging; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(package_name="model-reconciler")
@click.pass_context
def main(ctx: click.Context, models_dir: Optional[Path], db: Optional[Path], config: Optional[Path],
         lock: Optional[Path], verbose: int, quiet: bool) -> None:
    """Manage model files the GitOps way: manifests in, plan, apply, watch."""
    level = logging.WARNING if not verbose else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=logging.ERROR if quiet else level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = CliState(models_dir, db, config, lock, verbose, quiet)


paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


def _plan_options(state: CliState, no_prune: bool, targets: tuple[str, ...], allow_empty: bool = False,
                  max_deletions: Optional[int] = None) -> Any:
    from reconciler.reconcile.planner import PlanOptions

    return PlanOptions(
        prune=not no_prune,
        targets=targets,
        allow_empty=allow_empty,
        max_deletions=state.settings.max_deletions if max_deletions is None else max_deletions,
    )


@main.command()
@paths_argument
@click.pass_obj
@handle_errors
def validate(state: CliState, paths: tuple[Path, ...]) -> None:
    """Check manifests (schema and semantics) and that local sources are models; no network."""
    from reconciler.reconcile.api import read_manifests
    from reconciler.reconcile.planner import check_local_entries

    manifest = read_manifests(paths, state.settings)
    problems = check_local_entries(manifest)
    for problem in problems:
        fail(problem)
    if problems:
        sys.exit(EXIT_ERROR)
    entries = manifest.entries()
    if not state.quiet:
        click.echo(f"Valid: {len(manifest.sets)} model set(s), {len(entries)} model(s).")


@main.command()
@paths_argument
@click.option("-o", "--output", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True, help="markdown: a pull-request comment.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Save the plan for `apply PLANFILE`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when nothing changes, 2 when something does.")
@click.option("--no-prune", is_flag=True, help="Plan no deletions.")
@click.option("--target", "targets", multiple=True, help="Only these model names (repeatable).")
@click.pass_obj
@handle_errors
def plan(state: CliState, paths: tuple[Path, ...], output: str, out_file: Optional[Path],
         detailed_exitcode: bool, no_prune: bool, targets: tuple[str, ...]) -> None:
    """Compute what apply would do; change nothing."""
    from reconciler.reconcile import api
    from reconciler.render.json_out import print_json
    from reconciler.render.plan_text import render_plan_markup

    the_plan = api.plan(paths, state.settings, _plan_options(state, no_prune, targets))
    if output == "json":
        print_json(the_plan.public_dict())
    elif output == "markdown":
        from reconciler.render.plan_markdown import render_plan_markdown

        click.echo(render_plan_markdown(the_plan), nl=False)
    elif not state.quiet:
        stdout_console().print(render_plan_markup(the_plan))
    if out_file is not None:
        the_plan.save(out_file)
        if output == "text" and not state.quiet:
            click.echo(f"Saved the plan to {out_file}; run `reconciler apply {out_file}` to carry it out.", err=True)
    for action in the_plan.errors:  # one line each; errors win over --detailed-exitcode's 2
        fail(action.error or action.name)
    if the_plan.errors:
        sys.exit(EXIT_ERROR)
    if detailed_exitcode and the_plan.has_changes:
        sys.exit(EXIT_CHANGES)


@main.command()
@paths_argument
@click.option("-y", "--auto-approve", is_flag=True, help="Do not ask; required without a terminal.")
@click.option("--locked", is_flag=True, help="Fail if the manifests changed since the lock file was written.")
@click.option("--no-prune", is_flag=True, help="Delete nothing.")
@click.option("--allow-empty", is_flag=True, help="Let a set that declares no models prune all of its models.")
@click.option("--max-deletions", type=click.IntRange(min=0), default=None,
              help="Refuse an apply that deletes more models than this [default: 10].")
@click.option("--target", "targets", multiple=True, help="Only these model names (repeatable).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Parallel downloads.")
@click.pass_obj
@handle_errors
def apply(state: CliState, paths: tuple[Path, ...], auto_approve: bool, locked: bool, no_prune: bool,
          allow_empty: bool, max_deletions: Optional[int], targets: tuple[str, ...], output: str,
          jobs: Optional[int]) -> None:
    """Plan and carry out the changes (or carry out a saved PLANFILE)."""
    from reconciler.reconcile import api
    from reconciler.reconcile.plan import Plan, is_plan_file
    from reconciler.render.json_out import print_json
    from reconciler.render.plan_text import render_plan_markup

    settings = state.settings
    if jobs is not None:
        settings.max_parallel_dl = jobs
    interactive = stdin_is_terminal()
    if not auto_approve and not interactive:
        fail("apply needs -y/--auto-approve when standard input is not a terminal; nothing changed")
        sys.exit(EXIT_ERROR)
    options = _plan_options(state, no_prune, targets, allow_empty, max_deletions)
    saved = manifest = None
    if len(paths) == 1 and is_plan_file(paths[0]):
        saved = Plan.load(paths[0])
    else:
        manifest = api.read_manifests(paths, settings)  # read once, used below
    if not auto_approve:
        if locked and manifest is not None:  # refuse before showing a plan; with -y, apply() checks
            from reconciler.reconcile.lockfile import read_lock

            api.check_locked(manifest, read_lock(settings.lock), settings.lock)
        preview = saved or api.plan(paths, settings, options, manifest=manifest)
        stdout_console().print(render_plan_markup(preview))
        if not preview.has_changes:
            for action in preview.errors:
                fail(action.error or action.name)
            if preview.errors:
                sys.exit(EXIT_ERROR)
            return
        answer = click.prompt("Do you want to perform these actions? Only 'yes' will be accepted", default="",
                              show_default=False)
        if answer.strip() != "yes":
            click.echo("Apply cancelled; nothing changed.", err=True)
            sys.exit(EXIT_ERROR)
        if saved is None:
            saved = preview  # apply exactly what was shown, refused if the state moved meanwhile
    from reconciler.render.plan_text import render_apply_summary
    from reconciler.render.progress import ApplyProgress

    err = stderr_console()
    text_out = output == "text" and not state.quiet

    def show_plan(the_plan: Plan) -> None:
        if text_out and auto_approve:  # without -y the plan was shown before the question
            stdout_console().print(render_plan_markup(the_plan))

    progress = ApplyProgress(err, live=text_out and sys.stderr.isatty())
    with progress:
        result = api.apply(paths, settings, options, saved_plan=saved, manifest=manifest,
                           locked=locked and saved is None,
                           on_action=None if state.quiet else progress.on_action,
                           event_handlers=[progress.on_event], on_plan=show_plan)
    if output == "json":
        print_json(result.plan.public_dict(with_results=True))
    elif not state.quiet:
        stdout_console().print(render_apply_summary(result.plan))
    for action in result.failed:
        fail(failure_line(action))
    if not result.ok:
        sys.exit(EXIT_ERROR)


@main.command()
@paths_argument
@click.option("--interval", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds between full passes (with ±5% jitter), besides the file events.")
@click.option("--debounce", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Seconds of quiet after a file event before reconciling (capped at 10 s of events).")
@click.option("--status-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Rewrite this JSON file after each reconcile.")
@click.option("--listen", callback=host_port, metavar="HOST:PORT", help="Serve /healthz, /readyz and /metrics.")
@click.option("--allow-prune-on-delete", is_flag=True, help="Deleting a manifest file prunes its sets.")
@click.option("--poll", is_flag=True, help="Poll instead of inotify (NFS, SMB, Docker Desktop mounts).")
@click.option("--no-prune", is_flag=True, help="Delete nothing.")
@click.option("--target", "targets", multiple=True, help="Only these model names (repeatable).")
@click.option("--max-deletions", type=click.IntRange(min=0), default=None,
              help="Refuse a reconcile that deletes more models than this [default: 10].")
@click.option("--locked", is_flag=True, help="Refuse while the manifests differ from the lock file.")
@click.pass_obj
@handle_errors
def watch(state: CliState, paths: tuple[Path, ...], interval: float, debounce: float, status_file: Optional[Path],
          listen: Optional[tuple[str, int]], allow_prune_on_delete: bool, poll: bool, no_prune: bool,
          targets: tuple[str, ...], max_deletions: Optional[int], locked: bool) -> None:
    """Reconcile now, then on every change to the manifests, the lock file, the models dir and
    the autoimport dir, and every interval; SIGHUP reconciles now; SIGTERM/SIGINT exit 0."""
    from reconciler.reconcile.watch import Watcher, WatchOptions

    if not state.quiet:  # one line per reconcile even without -v; -v adds the start lines
        logging.getLogger("reconciler.reconcile.watch").setLevel(logging.DEBUG if state.verbose else logging.INFO)
    options = WatchOptions(paths=paths, interval=interval, debounce=debounce, status_file=status_file,
                           listen=listen, allow_prune_on_delete=allow_prune_on_delete, poll=poll,
                           prune=not no_prune, targets=targets, max_deletions=max_deletions, locked=locked)
    sys.exit(Watcher(state.settings, options).run())


@main.command()
@click.argument("name", required=False, shell_complete=complete_model_names)
@click.option("--set", "set_name", shell_complete=complete_set_names, help="Only models of this ModelSet.")
@click.option("--tag", "tags", multiple=True, help="Only models with this tag (repeatable: all of them).")
@click.option("--type", "model_type", help="Only this model type (main, lora, vae, ...).")
@click.option("--base", help="Only this base (sd-1, sdxl, ...).")
@click.option("--state", "state_filter", type=click.Choice(["in_sync", "drifted", "missing", "unmanaged"]), help="Only this state.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
@handle_errors
def status(state: CliState, name: Optional[str], set_name: Optional[str], tags: tuple[str, ...],
           model_type: Optional[str], base: Optional[str], state_filter: Optional[str], output: str) -> None:
    """Every record with its live state; with NAME, one model in detail."""
    from reconciler.reconcile.observe import observe_all
    from reconciler.reconcile.services import open_services
    from reconciler.reconcile.status_query import filter_observed, model_detail
    from reconciler.reconcile.views import view_status
    from reconciler.render.json_out import print_json
    from reconciler.render.status_text import detail_markup, status_document, status_table, warm_document

    with open_services(state.settings, create=False) as services:
        observed = filter_observed(observe_all(services.store, state.settings.models_dir), set_name=set_name,
                                   tags=tags, model_type=model_type, base=base, state=state_filter)
        views = view_status(services.store) if name is None else []  # ModelView links
        if name is not None:
            found = [o for o in observed if o.record.name == name]
            if not found:
                filtered = bool(set_name or tags or model_type or base or state_filter)
                fail(f"no registered model named {name!r}" + (" matches the filters" if filtered else ""))
                sys.exit(EXIT_ERROR)
            details = [model_detail(services, o, warm_document(o.record)) for o in found]
    if name is not None:
        if output == "json":
            print_json({"format_version": 1, "models": details})
        else:
            for detail in details:
                stdout_console().print(detail_markup(detail))
    elif output == "json":
        print_json({**status_document(observed), "views": views})
    elif not observed:
        click.echo("No models are registered." if not (set_name or tags or model_type or base or state_filter)
                   else "No registered model matches the filters.")
    else:
        stdout_console().print(status_table(observed))
    for link in views if output != "json" else []:
        click.echo(f"view {link['view']}: {link['path']} ({link['mode']}, {link['model']}): {link['state']}")


@main.command()
@paths_argument
@click.option("--upgrade", is_flag=True, help="Re-resolve every remote model (or those named by --target).")
@click.option("--target", "targets", multiple=True, help="With --upgrade: only these model names.")
@click.option("--check", is_flag=True,
              help="Resolve and write nothing (no network); exit 1 when the lock file is stale, as `apply --locked` would.")
@click.pass_obj
@handle_errors
def lock(state: CliState, paths: tuple[Path, ...], upgrade: bool, targets: tuple[str, ...], check: bool) -> None:
    """Resolve remote sources and write the lock file (or, with --check, only check it)."""
    from reconciler.reconcile import api

    if check:
        from reconciler.errors import LockFileError
        from reconciler.reconcile.lockfile import read_lock

        manifest = api.read_manifests(paths, state.settings)
        the_lock = read_lock(state.settings.lock)
        remote = api.remote_entries(manifest)
        if the_lock is not None or remote:
            try:
                api.check_locked(manifest, the_lock, state.settings.lock)
            except LockFileError as exc:
                raise LockFileError(str(exc).replace("--locked: ", "lock --check: ", 1)) from None
        if not state.quiet:
            click.echo(f"{state.settings.lock} is up to date: {len(remote)} remote model(s) locked as declared.")
        return
    the_lock, resolved = api.lock(paths, state.settings, upgrade=upgrade, targets=targets)
    if not state.quiet:
        kept = len(the_lock.models) - len(resolved)
        click.echo(f"Wrote {state.settings.lock}: {len(the_lock.models)} model(s), "
                   f"{len(resolved)} resolved now, {kept} kept as locked.")
        for name in resolved:
            model = the_lock.models[name]
            click.echo(f"  {name}: {model.source} @ {model.revision} ({len(model.files)} file(s))")


@main.command()
@click.option("--all", "remove_all", is_flag=True, help="Also remove partial downloads that could still resume.")
@click.pass_obj
@handle_errors
def gc(state: CliState, remove_all: bool) -> None:
    """Remove leftover temporary downloads and unreferenced cache entries."""
    from reconciler.reconcile.gc import collect_garbage
    from reconciler.render.units import human_bytes

    report = collect_garbage(state.settings, remove_partial=remove_all)
    if not state.quiet:
        click.echo(f"Removed {len(report.removed)} item(s), {human_bytes(report.freed_bytes)} freed; "
                   f"kept {len(report.kept)} resumable partial download(s)"
                   + ("" if remove_all or not report.kept else " (use --all to remove them)") + ".")


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("schemas"), show_default=True)
@click.pass_obj
@handle_errors
def schema(state: CliState, out_dir: Path) -> None:
    """Write the JSON Schemas of the manifest and lock file."""
    from reconciler.reconcile.schema import write_schemas

    for path in write_schemas(out_dir):
        if not state.quiet:
            click.echo(f"wrote {path}")


@main.command()
@paths_argument
@click.option("--check", is_flag=True, help="Change nothing; exit 1 when a file is not in canonical form.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of each change.")
@click.pass_obj
@handle_errors
def fmt(state: CliState, paths: tuple[Path, ...], check: bool, show_diff: bool) -> None:
    """Rewrite manifests in canonical form (key order, indent), comments and entry order kept."""
    from reconciler.reconcile.api import manifest_paths
    from reconciler.reconcile.manifest.fmt import format_paths

    result = format_paths(manifest_paths(paths, state.settings), write=not check)
    for file in result.changed:
        if show_diff:
            click.echo(result.diffs[file], nl=False)
        if not state.quiet:
            click.echo(f"{'would reformat' if check else 'reformatted'} {file}", err=True)
    if not state.quiet:
        verb = "would be reformatted" if check else "reformatted"
        click.echo(f"{len(result.changed)} of {len(result.files)} manifest file(s) {verb}.", err=True)
    if check and result.changed:
        sys.exit(EXIT_ERROR)


@main.command("import")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--set", "set_name", default="imported", show_default=True,
              help="Name of the ModelSet that declares the models.")
@click.option("--out", "out_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Manifest file to write, or to add to (comments and order kept) [default: print to stdout].")
@click.pass_obj
@handle_errors
def import_models(state: CliState, directory: Optional[Path], set_name: str, out_file: Optional[Path]) -> None:
    """Write a manifest declaring the models in DIR [default: the models dir] and the store's unmanaged ones."""
    from reconciler.reconcile.api import manifest_paths
    from reconciler.reconcile.importer import import_manifest
    from reconciler.reconcile.services import open_services

    with open_services(state.settings, create=False) as services:
        result = import_manifest(services.installer, directory, set_name=set_name, out=out_file,
                                 also_read=manifest_paths((), state.settings))
    if not state.quiet:
        for path, why in result.skipped:
            click.echo(f"Warning: skipped {path}: {' '.join(why.split())}", err=True)
    if out_file is None:
        click.echo(result.text, nl=False)
    if not state.quiet:
        where = f" to {out_file}" if result.written else ("" if out_file is None else f"; {out_file} is unchanged")
        click.echo(f"Declared {len(result.added)} model(s) in set '{set_name}'{where} "
                   f"({result.already_declared} already declared, {len(result.skipped)} skipped).",
                   err=out_file is None)


if __name__ == "__main__":  # pragma: no cover
    main()
