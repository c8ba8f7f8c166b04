"""The pre-commit hooks and the GitHub Actions example run commands the CLI has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
from ruamel.yaml import YAML

from reconciler.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]

CANONICAL = """\
apiVersion: reconciler/v1
kind: ModelSet
metadata:
  name: hooks
spec:
  models:
    - name: a
      source: ../files/a.safetensors
      type: lora
"""


def _load(path: Path):
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def _option_names(command: click.Command) -> dict[str, click.Parameter]:
    return {name: p for p in command.params if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}


def check_command_line(argv: list[str]) -> str:
    """Fail unless ``reconciler ARGS`` names a command and options it has; returns the command."""
    assert argv[0] == "reconciler", argv
    group_options = _option_names(cli_main)
    rest = argv[1:]
    while rest and rest[0].startswith("-"):
        option = group_options.get(rest[0].split("=")[0])
        assert option is not None, f"no global option {rest[0]}"
        rest = rest[1 + (not option.is_flag and not option.count and "=" not in rest[0]):]
    assert rest, argv
    command = cli_main.commands.get(rest[0])
    assert command is not None, f"no command {rest[0]!r} in {argv}"
    options = _option_names(command)
    args = rest[1:]
    while args:
        arg = args.pop(0)
        if arg.startswith("-") and arg != "-":
            option = options.get(arg.split("=")[0])
            assert option is not None, f"`reconciler {rest[0]}` has no option {arg}"
            if not option.is_flag and not option.count and "=" not in arg:
                value = args.pop(0)
                if isinstance(option.type, click.Choice):
                    assert value in option.type.choices, f"{arg} {value} is not one of {option.type.choices}"
    return rest[0]


def reconciler_lines(script: str) -> list[list[str]]:
    """Each shell line of ``script`` that runs reconciler, cut at redirections, pipes and comments."""
    found = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        cut = next((i for i, w in enumerate(words) if w in ("|", "||", "&&", ";") or w.startswith(">")), len(words))
        words = words[:cut]
        if words and words[0] == "reconciler":
            found.append(words)
    return found


def test_workflow_runs_only_commands_the_cli_has() -> None:
    workflow = _load(REPO / "examples" / "ci" / "github-actions.yml")
    assert workflow["on"]["pull_request"]["paths"] == ["manifests/**", "reconciler.lock"]
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    commands = [check_command_line(argv) for run in runs for argv in reconciler_lines(run)]
    assert commands == ["validate", "fmt", "lock", "plan"]
    script = next(s["with"]["script"] for job in workflow["jobs"].values() for s in job["steps"]
                  if str(s.get("uses", "")).startswith("actions/github-script"))
    assert "<!-- reconciler-plan -->" in script and "updateComment" in script


def test_the_checker_catches_a_bad_line() -> None:
    for bad in ("reconciler frobnicate", "reconciler plan --nope", "reconciler plan -o yaml", "reconciler --bogus plan"):
        try:
            check_command_line(shlex.split(bad))
        except AssertionError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_pre_commit_hooks_run_on_a_sample_manifest(ws) -> None:
    from reconciler.testing.models import write_lora_kohya

    write_lora_kohya(ws.files / "a.safetensors", base="sd-1")
    hooks = {hook["id"]: hook for hook in _load(REPO / ".pre-commit-hooks.yaml")}
    assert set(hooks) == {"reconciler-validate", "reconciler-fmt"}
    messy = ws.write_manifest("hooks.yaml", CANONICAL.replace("    - name: a\n      source: ../files/a.safetensors\n",
                                                                "    - source: ../files/a.safetensors\n      name: a\n"))
    for hook_id in ("reconciler-fmt", "reconciler-validate"):
        hook = hooks[hook_id]
        argv = shlex.split(hook["entry"])
        check_command_line(argv)
        assert hook["language"] == "python"
        files = ["manifests/hooks.yaml"] if hook.get("pass_filenames", True) else []
        first = ws.runner.invoke(cli_main, [*argv[1:], *files], catch_exceptions=False)
        if hook_id == "reconciler-fmt":
            # pre-commit fails a hook that changes files; the second run passes
            assert first.exit_code == 0 and messy.read_text() == CANONICAL, first.output
            again = ws.runner.invoke(cli_main, [*argv[1:], "--check", *files], catch_exceptions=False)
            assert again.exit_code == 0, again.output
        else:
            assert first.exit_code == 0, first.output
            assert "Valid: 1 model set(s), 1 model(s)." in first.stdout
        assert re.search(hook["files"], "manifests/hooks.yaml") and not re.search(hook["files"], "README.md")
