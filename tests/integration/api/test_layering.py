"""DESIGN.md "Layout": use cases live in gateway/services/, each owning its transactions;
REST handlers (gateway/api/) and CLI commands only parse, call one service and present
the result, so neither opens a transaction of its own."""

from __future__ import annotations

from pathlib import Path

import gateway

GATEWAY = Path(gateway.__file__).parent
NEEDLE = ".transaction("


def _front_ends() -> list[Path]:
    """Every module of the REST API and of the CLI (a module today, a package in the
    target layout)."""
    files = sorted((GATEWAY / "api").rglob("*.py"))
    files += [GATEWAY / "cli.py"] if (GATEWAY / "cli.py").exists() else []
    files += sorted((GATEWAY / "cli").rglob("*.py"))
    return files


def test_ok_front_ends_found() -> None:
    names = {p.relative_to(GATEWAY).as_posix() for p in _front_ends()}
    assert {"api/certificates.py", "api/principals.py"} <= names
    assert "cli.py" in names or "cli/__init__.py" in names


def test_ok_no_transaction_in_api_or_cli() -> None:
    offenders = [
        f"{path.relative_to(GATEWAY.parent).as_posix()}:{number}: {line.strip()}"
        for path in _front_ends()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if NEEDLE in line
    ]
    assert not offenders, (
        "REST handlers and CLI commands call a service use case, which opens its own "
        "transaction (DESIGN.md Layout):\n" + "\n".join(offenders)
    )
