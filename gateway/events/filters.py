"""The `matches` filter of alerts: a regular expression that a hostile Admin cannot turn
into a stalled server.

Two bounds, both needed. At validation (`check_pattern`), patterns that backtrack
exponentially in Python's engine are refused with a 400: nested quantifiers (`(a+)+`,
`(\\w*)*`), quantified alternations (`(a|a)*`) and backreferences, plus a length limit.
At match time the pattern runs in the `regex` package (PyPI) with a `timeout`, on input
cut to MAX_INPUT characters, so whatever slips past the static check is stopped after
MATCH_TIMEOUT_S; a timed-out match counts as no match and is logged.

Why not RE2 (google-re2, linear time, no backtracking at all): its wheels pin a libre2
ABI and it refuses constructs operators already use in names (lookarounds); `regex` is
pure-wheel, keeps Python's syntax and offers the timeout the issue asks for.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any

import regex

with warnings.catch_warnings():
    # Python's own regex parser (deprecated as a public name since 3.11, still shipped):
    # the only parser of exactly the syntax we accept.
    warnings.simplefilter("ignore", DeprecationWarning)
    import sre_constants
    import sre_parse

log = logging.getLogger(__name__)

MAX_PATTERN = 256
MAX_INPUT = 1024
MATCH_TIMEOUT_S = 0.05

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
_POSSESSIVE = getattr(sre_constants, "POSSESSIVE_REPEAT", None)
if _POSSESSIVE is not None:
    _REPEATS.add(_POSSESSIVE)


class UnsafePattern(ValueError):
    pass


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns of one parsed node."""
    if op in _REPEATS:
        return [av[2]]
    if op is sre_constants.SUBPATTERN:
        return [av[3]]
    if op is sre_constants.BRANCH:
        return list(av[1])
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [av[1]]
    if op is sre_constants.GROUPREF_EXISTS:
        return [p for p in av[1:] if p is not None]
    atomic = getattr(sre_constants, "ATOMIC_GROUP", None)
    if atomic is not None and op is atomic:
        return [av]
    return []


def _walk(pattern: Any, inside_repeat: bool) -> None:
    for op, av in pattern:
        if op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
            raise UnsafePattern("backreferences are not allowed")
        many = op in _REPEATS and (av[1] is sre_constants.MAXREPEAT or av[1] > 1)
        if many and inside_repeat:
            raise UnsafePattern(
                "nested quantifiers (a repeated group containing a repetition, like (a+)+) "
                "can take exponential time"
            )
        if op is sre_constants.BRANCH and inside_repeat:
            raise UnsafePattern(
                "alternation inside a repeated group (like (a|ab)*) can take exponential time"
            )
        for child in _children(op, av):
            _walk(child, inside_repeat or many)


def check_pattern(pattern: str) -> None:
    """UnsafePattern (a ValueError) for a pattern that is invalid or may backtrack
    exponentially; what the REST layer answers 400 with."""
    if len(pattern) > MAX_PATTERN:
        raise UnsafePattern(f"a pattern is at most {MAX_PATTERN} characters")
    try:
        parsed = sre_parse.parse(pattern)
        regex.compile(pattern)
    except (sre_constants.error, regex.error, OverflowError, RecursionError) as err:
        # OverflowError: a repetition count past C's range ("a{99999999999999999999}").
        raise UnsafePattern(f"not a valid regular expression: {err}") from None
    _walk(parsed, False)


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    return regex.compile(pattern, regex.IGNORECASE)


def regex_search(pattern: str, value: str) -> bool:
    """Whether `pattern` occurs in `value` (case-insensitive), bounded in time."""
    try:
        found = _compiled(pattern).search(value[:MAX_INPUT], timeout=MATCH_TIMEOUT_S)
    except TimeoutError:
        log.warning("alert filter pattern %r timed out; treated as no match", pattern)
        return False
    except regex.error:
        return False
    return found is not None
