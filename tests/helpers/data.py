"""Fixed test vectors under tests/data/<feature>/ (tests/data/README.md lists them).

Only vectors that never change live there; whatever a test generates at run time stays in
its code. Text is read without newline translation, byte for byte as stored."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"


def data_path(*parts: str) -> Path:
    """tests/data/<parts...>; the file must exist."""
    path = DATA.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"no test vector {path.relative_to(DATA)} under {DATA}")
    return path


def read_bytes(*parts: str) -> bytes:
    return data_path(*parts).read_bytes()


def read_text(*parts: str) -> str:
    """The file's UTF-8 text exactly as stored (no universal-newline translation)."""
    return read_bytes(*parts).decode("utf-8")
