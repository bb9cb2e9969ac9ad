"""`certgate --help` and every command's help, usage errors and a bad config file."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from cli_helpers import Cli
from click.testing import CliRunner

from gateway.cli import main


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


ALL_COMMANDS = command_paths(main)


def test_help_covers_the_documented_commands() -> None:
    documented = {
        ("serve",), ("db",), ("db", "upgrade"), ("ca",), ("ca", "create"), ("ca", "list"),
        ("ca", "import"), ("token",), ("token", "create"), ("cert",), ("cert", "issue"),
        ("cert", "list"), ("cert", "revoke"),
    }  # fmt: skip
    assert documented <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: "ok/" + ("-".join(p) or "certgate"))
def test_help(path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="certgate")

    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert f"Usage: {' '.join(('certgate', *path))} [OPTIONS]" in result.output
    assert "--help" in result.output
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    if isinstance(command, click.Group):
        for sub in command.commands:
            assert sub in result.output
    # Nothing was created: --help touches no database or home directory.
    assert list(tmp_path.iterdir()) == []


def test_unknown_command_is_a_usage_error(fresh_cli: Cli) -> None:
    output = fresh_cli.fail("ca", "explode", code=2)
    assert "No such command 'explode'" in output


def test_bad_config_file_is_a_clean_error(fresh_cli: Cli) -> None:
    bad = fresh_cli.tmp / "bad.toml"
    bad.write_text("[server]\nport = 1\n")
    output = fresh_cli.fail("--config", str(bad), "ca", "list")
    assert "unknown setting 'server.port'" in output
