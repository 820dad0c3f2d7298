"""What a user sees when something is wrong or missing: exit codes, messages, whole
values in piped tables, and sections that no check uses yet."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporters.result import Check, Kind
from monitor import checks
from monitor.cli import SUBCOMMANDS, main
from monitor.commands import run as run_command
from monitor.commands.common import DEFAULT_CONFIG_PATH
from monitor.config import Config, parse_config
from monitor.lab.faults import FAULTS
from tests.servers import SilentServer

REPO = Path(__file__).resolve().parents[1]
FAULT = FAULTS[0].name


def mailprobe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("MAILPROBE_CONFIG", "COLUMNS")}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=base | (env or {}),
        check=False,
    )  # fmt: skip


def smtp_config(path: Path, name: str = "x", port: int = 9) -> Path:
    path.write_text(
        "defaults: {timeout: 1}\n"
        f"smtp: {{targets: [{{name: {name}, host: 127.0.0.1, port: {port}}}]}}\n"
    )
    return path


# ---- exit codes (item 5) --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--only", "nonsense"),
        ("--format", "xml"),
        ("--frob",),
        ("--target",),
    ],
    ids=" ".join,
)
def test_every_usage_error_of_run_is_unknown(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = mailprobe("run", "--config", str(smtp_config(tmp_path / "c.yml")), *args)
    assert done.returncode == 3, done.stderr
    assert "usage: mailprobe" in done.stderr and "error:" in done.stderr
    assert done.stdout == ""


def test_a_crash_is_unknown_not_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No real input is known to crash `run` (each would be fixed): a bug is stood in for."""

    def crash(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(run_command, "_run", crash)
    code = main(["run", "--config", str(smtp_config(tmp_path / "c.yml"))])
    assert code == 3
    err = capsys.readouterr().err
    assert "RuntimeError: a bug" in err and "mailprobe: internal error (a bug)" in err


def test_run_help_names_the_exit_codes() -> None:
    text = mailprobe("run", "--help").stdout
    codes = re.findall(r"^  ([0-3])  (\S.*)$", text, re.MULTILINE)
    assert [code for code, _ in codes] == ["0", "1", "2", "3"]
    assert "unknown" in dict(codes)["3"]


# ---- a missing config, a lab that is not there (item 6) ------------------------------


def test_missing_config_names_the_path_and_how_to_name_one(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yml"
    given = mailprobe("run", "--config", str(missing))
    assert given.returncode == 3
    assert f"no config file at {missing} (given with --config)" in given.stderr
    assert "--config FILE or MAILPROBE_CONFIG=FILE" in given.stderr
    from_env = mailprobe("config", "check", env={"MAILPROBE_CONFIG": str(missing)})
    assert from_env.returncode == 3
    assert f"no config file at {missing} (named by $MAILPROBE_CONFIG)" in from_env.stderr


def test_missing_default_config(tmp_path: Path) -> None:
    if DEFAULT_CONFIG_PATH.exists():
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists on this machine")
    done = mailprobe("run")
    assert done.returncode == 3
    assert f"no config file at {DEFAULT_CONFIG_PATH} (the default;" in done.stderr
    assert "--config FILE or MAILPROBE_CONFIG=FILE" in done.stderr


@pytest.mark.parametrize("action", [("break", FAULT), ("heal", FAULT), ("down",)])
def test_lab_commands_on_a_folder_with_no_lab_leave_nothing_behind(
    tmp_path: Path, action: tuple[str, ...]
) -> None:
    folder = tmp_path / "no-lab-here"
    done = mailprobe("lab", *action, "--dir", str(folder))
    assert not folder.exists()
    if action[0] == "down":
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == 3
        assert f"no lab running in {folder}; start one with `lab up --dir {folder}`" in (
            done.stderr
        )


# ---- tables when piped (item 7) ------------------------------------------------------


def test_piped_table_keeps_every_value_whole(tmp_path: Path) -> None:
    name = "a-target-name-long-enough-to-be-cut-in-eighty-columns." + "x" * 40
    with SilentServer() as silent:
        config = smtp_config(tmp_path / "c.yml", name, silent.port)
        text = mailprobe("run", "--config", str(config))
        document = mailprobe("run", "--config", str(config), "--format", "json")
        narrow = mailprobe("run", "--config", str(config), env={"COLUMNS": "60"})
    assert text.returncode == 2, text.stderr
    (result,) = json.loads(document.stdout)["results"]
    rows = [line for line in text.stdout.splitlines() if name in line]
    assert len(rows) == 1 and result["reason"] in rows[0]
    assert all(line == line.rstrip() for line in text.stdout.splitlines())
    assert name not in narrow.stdout  # $COLUMNS is followed when set
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 60


# ---- kinds without checks (item 8) ---------------------------------------------------


def test_every_kind_has_its_config_section() -> None:
    assert {kind.value for kind in Kind} <= set(Config.model_fields)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``mailprobe ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as stop:  # --help
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_section_without_checks_is_said_to_be_unused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kind without a builder (canary, until its checks landed; here its builder is
    taken out of the registry) is said to be unused by every command that reads it."""
    kind = Kind.CANARY
    monkeypatch.delitem(checks.BUILDERS, kind, raising=False)
    config = tmp_path / "c.yml"
    config.write_text(f"{kind}: {{}}\n")
    notice = f"{kind}: section not used yet; mailprobe has no {kind} checks"
    code, out, _ = cli(capsys, "config", "check", "--config", str(config))
    assert code == 0 and notice in out
    code, _, err = cli(capsys, "run", "--config", str(config))
    assert code == 3
    assert notice in err and "no checks match" in err
    config.write_text(f"{kind}: {{}}\n" + smtp_config(tmp_path / "smtp.yml").read_text())
    code, _, err = cli(capsys, "run", "--config", str(config), "--only", kind.value)
    assert code == 3
    assert f"--only {kind}: there are no {kind} checks yet" in err
    assert notice not in err  # said once, not twice
    code, _, err = cli(capsys, "run", "--config", str(config), "--only", "smtp")
    assert notice not in err  # not about what was not asked for
    code, out, _ = cli(capsys, "run", "--help")
    assert code == 0 and kind.value in out.split("no checks)")[0].split("kinds to run:")[1]


def test_only_logs_says_which_commands_use_the_section(tmp_path: Path) -> None:
    done = mailprobe("run", "--config", str(smtp_config(tmp_path / "c.yml")), "--only", "logs")
    assert done.returncode == 3
    assert "there are no logs checks; the logs section is for other commands" in done.stderr
    assert "`mailprobe serve`" in done.stderr and "`mailprobe logs`" in done.stderr


def test_a_kind_with_a_builder_counts_as_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the canary (or any) kind gets its builder, its section is used: no notice."""
    config = parse_config("canary: {}\ndmarc: {}\n")
    assert [n.split(":")[0] for n in checks.unchecked_sections(config)] == [
        k.value for k in (Kind.CANARY, Kind.DMARC) if k not in checks.BUILDERS
    ]

    def build(config: Config) -> list[Check]:
        return []

    monkeypatch.setitem(checks.BUILDERS, Kind.CANARY, build)
    monkeypatch.setitem(checks.BUILDERS, Kind.DMARC, build)
    assert checks.unchecked_sections(config) == []
    assert Kind.CANARY in checks.checked_kinds()


def _strings(tree: ast.AST) -> list[str]:
    """String constants of a module, docstrings left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_no_message_points_to_a_command_that_does_not_exist() -> None:
    pointers = []
    for path in sorted([*(REPO / "monitor").rglob("*.py"), *(REPO / "exporters").rglob("*.py")]):
        for text in _strings(ast.parse(path.read_text())):
            for command in re.findall(r"`mailprobe ([a-z]+)", text):
                if command not in SUBCOMMANDS:
                    pointers.append(f"{path.relative_to(REPO)}: mailprobe {command}")
    assert pointers == []
