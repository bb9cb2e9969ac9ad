"""One verifier for every secret stored as a scrypt hash (API tokens, EST passphrases,
SCEP static challenges).

scrypt costs tens of milliseconds of CPU on purpose (gateway.pki.passwords). Run on the
event loop, a handful of clients sending a known token id with wrong secrets would stall
every other request of the process, /healthz included. So:

- scrypt runs on a small executor of its own: the loop only awaits, and a flood of
  verifications queues there instead of spawning threads or taking every core (hashlib's
  scrypt releases the GIL, so the loop keeps running meanwhile);
- concurrent verifications of the same secret against the same hash share one scrypt run;
- a secret that verified is remembered in one bounded LRU memo (optionally with a TTL), so
  a legitimate client pays scrypt once per process, not once per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gateway.pki.passwords import verify_secret

DEFAULT_MAX_ENTRIES = 4096
DEFAULT_TTL_SECONDS = 3600.0


def default_workers() -> int:
    """Half the cores, at least one: scrypt never takes the core the event loop runs on
    (on a 2-core machine, one scrypt thread)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@dataclass
class _Run:
    """One scrypt check in progress and how many callers still wait for it."""

    future: asyncio.Future[bool]
    waiters: int = 0


class SecretVerifier:
    """Checks secrets against stored scrypt hashes off the event loop, with a memo.

    A memo entry is keyed by the stored hash and holds an HMAC-SHA256 tag of (hash,
    secret) under a key drawn once per process: a hit proves that exactly this secret
    matched exactly this hash, the plaintext is never kept, and the tag means nothing
    outside this process. A rotated or changed secret has a new hash (fresh salt), so it
    misses and is checked afresh; the old entry ages out of the LRU.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float | None = DEFAULT_TTL_SECONDS,
        workers: int | None = None,
        check: Callable[[str, str], bool] = verify_secret,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive (or None for no expiry)")
        self._max = max_entries
        self._ttl = ttl_seconds
        self._check = check
        self._clock = clock
        self._key = secrets.token_bytes(32)
        # stored hash -> (tag of the secret that verified, monotonic expiry or +inf).
        self._memo: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        # (stored hash, tag) -> the scrypt run in progress, shared by concurrent callers.
        self._running: dict[tuple[str, bytes], _Run] = {}
        self._executor = ThreadPoolExecutor(
            max_workers=workers or default_workers(), thread_name_prefix="scrypt"
        )
        # Scrypt checks started (memo misses); for tests and metrics.
        self.scrypt_runs = 0

    def _tag(self, secret: bytes, encoded_hash: str) -> bytes:
        # Length-prefixed, so no (hash, secret) pair can be shifted into another.
        stored = encoded_hash.encode("utf-8", "surrogatepass")
        message = len(stored).to_bytes(4, "big") + stored + secret
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def known(self, secret: str, encoded_hash: str) -> bool:
        """Whether this exact secret already verified against this exact hash (memo only,
        never scrypt): for callers that must decide cheaply before doing something else,
        e.g. SCEP trying a one-time challenge only when the static one is not known."""
        raw = _utf8(secret)
        return raw is not None and self._hit(encoded_hash, self._tag(raw, encoded_hash))

    def _hit(self, encoded_hash: str, tag: bytes) -> bool:
        entry = self._memo.get(encoded_hash)
        if entry is None:
            return False
        known, expires = entry
        if expires <= self._clock():
            del self._memo[encoded_hash]
            return False
        if not hmac.compare_digest(known, tag):
            return False
        self._memo.move_to_end(encoded_hash)
        return True

    async def verify(self, secret: str, encoded_hash: str) -> bool:
        """True when `secret` matches `encoded_hash`; False for a mismatch or a malformed
        hash. scrypt runs on the verifier's executor, never on the event loop."""
        raw = _utf8(secret)
        if raw is None:
            # hash_secret encodes strictly, so no stored hash matches a secret that is not
            # valid UTF-8 (a lone surrogate from a header decoded with surrogateescape).
            return False
        tag = self._tag(raw, encoded_hash)
        if self._hit(encoded_hash, tag):
            return True
        run = self._running.get((encoded_hash, tag))
        if run is None:
            run = self._start(secret, encoded_hash, tag)
        run.waiters += 1
        try:
            # shield: one caller giving up must not cancel the run others share.
            return await asyncio.shield(run.future)
        except asyncio.CancelledError:
            # The last caller gave up (client gone): drop the check if it has not started,
            # so clients that send a wrong secret and hang up leave no scrypt work queued.
            if run.waiters == 1:
                run.future.cancel()
            raise
        finally:
            run.waiters -= 1

    def _start(self, secret: str, encoded_hash: str, tag: bytes) -> _Run:
        loop = asyncio.get_running_loop()
        self.scrypt_runs += 1
        run = _Run(loop.run_in_executor(self._executor, self._check, secret, encoded_hash))
        key = (encoded_hash, tag)
        self._running[key] = run

        def settle(done: asyncio.Future[bool]) -> None:
            if self._running.get(key) is run:
                del self._running[key]
            if done.cancelled() or done.exception() is not None or not done.result():
                return
            self._remember(encoded_hash, tag)

        run.future.add_done_callback(settle)
        return run

    def _remember(self, encoded_hash: str, tag: bytes) -> None:
        # Only successes are memoized. Failures are not: a memo of wrong secrets would be
        # filled by whoever sends the most garbage, evicting the legitimate entries (an
        # attacker could turn it into a scrypt-per-request DoS on real clients), and it
        # would cost memory per guess while saving nothing a real client needs.
        expires = float("inf") if self._ttl is None else self._clock() + self._ttl
        self._memo[encoded_hash] = (tag, expires)
        self._memo.move_to_end(encoded_hash)
        while len(self._memo) > self._max:
            self._memo.popitem(last=False)

    def __len__(self) -> int:
        return len(self._memo)

    def clear(self) -> None:
        self._memo.clear()

    def close(self) -> None:
        """Stop the executor; queued checks are dropped (their callers are going away)."""
        self._memo.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _utf8(secret: str) -> bytes | None:
    try:
        return secret.encode("utf-8")
    except UnicodeEncodeError:
        return None
