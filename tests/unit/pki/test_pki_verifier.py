from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from gateway.pki.passwords import hash_secret, verify_secret
from gateway.pki.verifier import SecretVerifier


class CountingCheck:
    """verify_secret with a call counter (thread-safe: it runs on the executor)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, secret: str, encoded: str) -> bool:
        with self._lock:
            self.calls += 1
        return verify_secret(secret, encoded)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_secret("right-secret")


@pytest.fixture
def check() -> CountingCheck:
    return CountingCheck()


@pytest.fixture
def verifier(check: CountingCheck) -> Iterator[SecretVerifier]:
    v = SecretVerifier(check=check)
    yield v
    v.close()


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("right-secret", True),
        ("wrong-secret", False),
        ("right-secret ", False),
        ("", False),
        ("right-secret\udcff", False),
    ],
    ids=["ok/right", "fail/wrong", "fail/suffix", "fail/empty", "fail/lone-surrogate"],
)
async def test_right_and_wrong_secret(
    verifier: SecretVerifier, stored: str, secret: str, expected: bool
) -> None:
    assert await verifier.verify(secret, stored) is expected


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "garbage",
        "scrypt$16384$8$1$$",
        "scrypt$3$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,
        "scrypt$1048576000$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,
        "bcrypt$16384$8$1$c2FsdA==$c2FsdA==",
        "scrypt$16384$8$1$not*base64$c2FsdA==",
    ],
    ids=[
        "fail/empty",
        "fail/garbage",
        "fail/empty-fields",
        "fail/n-not-power-of-two",
        "fail/n-too-large",
        "fail/other-scheme",
        "fail/bad-base64",
    ],
)
async def test_malformed_hash_is_false_and_not_memoized(
    verifier: SecretVerifier, encoded: str
) -> None:
    assert await verifier.verify("right-secret", encoded) is False
    assert verifier.known("right-secret", encoded) is False
    assert len(verifier) == 0


async def test_memo_hit_does_not_rerun_scrypt(
    verifier: SecretVerifier, check: CountingCheck, stored: str
) -> None:
    assert not verifier.known("right-secret", stored)
    assert await verifier.verify("right-secret", stored)
    assert check.calls == 1
    assert verifier.known("right-secret", stored)
    for _ in range(5):
        assert await verifier.verify("right-secret", stored)
    assert check.calls == 1
    # A wrong secret for the same hash is never answered from the memo.
    assert not verifier.known("wrong", stored)
    assert not await verifier.verify("wrong", stored)
    assert check.calls == 2


async def test_failures_are_not_memoized(
    verifier: SecretVerifier, check: CountingCheck, stored: str
) -> None:
    for _ in range(3):
        assert not await verifier.verify("wrong", stored)
    assert check.calls == 3
    assert len(verifier) == 0


async def test_memo_is_bounded_lru(check: CountingCheck) -> None:
    hashes = {f"s{i}": hash_secret(f"s{i}") for i in range(4)}
    verifier = SecretVerifier(max_entries=2, check=check)
    try:
        assert await verifier.verify("s0", hashes["s0"])
        assert await verifier.verify("s1", hashes["s1"])
        assert verifier.known("s0", hashes["s0"])  # s0 is now the most recent
        assert await verifier.verify("s2", hashes["s2"])  # evicts s1, the least recent
        assert len(verifier) == 2
        assert verifier.known("s0", hashes["s0"])
        assert not verifier.known("s1", hashes["s1"])
        assert verifier.known("s2", hashes["s2"])
        calls = check.calls
        assert await verifier.verify("s1", hashes["s1"])  # evicted: scrypt again
        assert check.calls == calls + 1
    finally:
        verifier.close()


async def test_rotated_hash_misses(verifier: SecretVerifier, check: CountingCheck) -> None:
    old = hash_secret("old-secret")
    assert await verifier.verify("old-secret", old)
    new = hash_secret("new-secret")
    # The new hash was never verified: the old secret fails against it, after scrypt.
    assert not verifier.known("old-secret", new)
    assert not await verifier.verify("old-secret", new)
    assert await verifier.verify("new-secret", new)
    assert check.calls == 3
    # Same secret, re-hashed (fresh salt): a different stored hash, so a miss too.
    again = hash_secret("new-secret")
    assert not verifier.known("new-secret", again)
    assert await verifier.verify("new-secret", again)
    assert check.calls == 4


async def test_ttl_expires_entries(check: CountingCheck, stored: str) -> None:
    clock = FakeClock()
    verifier = SecretVerifier(ttl_seconds=60, check=check, clock=clock)
    try:
        assert await verifier.verify("right-secret", stored)
        clock.now += 59
        assert verifier.known("right-secret", stored)
        clock.now += 2
        assert not verifier.known("right-secret", stored)
        assert len(verifier) == 0
        assert await verifier.verify("right-secret", stored)
        assert check.calls == 2
    finally:
        verifier.close()


async def test_memo_never_holds_the_plaintext(verifier: SecretVerifier, stored: str) -> None:
    assert await verifier.verify("right-secret", stored)
    state = repr(vars(verifier))
    assert "right-secret" not in state
    assert b"right-secret" not in b"".join(tag for tag, _ in verifier._memo.values())


async def test_concurrent_identical_checks_share_one_scrypt_run(
    verifier: SecretVerifier, check: CountingCheck, stored: str
) -> None:
    results = await asyncio.gather(*(verifier.verify("right-secret", stored) for _ in range(8)))
    assert results == [True] * 8
    assert check.calls == 1


async def test_concurrent_wrong_secrets_do_not_block_the_loop(stored: str) -> None:
    """Eight wrong secrets for a known hash (real scrypt) while a ticker runs: on the loop
    they would freeze it for 8 scrypt runs; off it, the ticker keeps its pace."""
    verifier = SecretVerifier()
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(verifier.verify(f"wrong-{i}", stored) for i in range(8)))
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await tick
        verifier.close()
    assert results == [False] * 8
    assert verifier.scrypt_runs == 8
    # The loop ticked all along (about every 5 ms) rather than once after the checks.
    assert len(gaps) >= max(3, int(elapsed / 0.005) // 4)
    assert max(gaps) < 0.25


async def test_wrong_secret_check_does_not_block_a_memo_hit(stored: str) -> None:
    """A client whose secret is memoized is answered while wrong secrets are queued."""
    release = threading.Event()

    def slow_check(secret: str, encoded: str) -> bool:
        if secret != "right-secret":
            release.wait(5)
        return verify_secret(secret, encoded)

    verifier = SecretVerifier(check=slow_check, workers=1)
    try:
        assert await verifier.verify("right-secret", stored)
        pending = [asyncio.create_task(verifier.verify(f"w{i}", stored)) for i in range(8)]
        await asyncio.sleep(0.01)
        assert await asyncio.wait_for(verifier.verify("right-secret", stored), 0.5)
        release.set()
        assert await asyncio.gather(*pending) == [False] * 8
    finally:
        release.set()
        verifier.close()


async def test_cancelled_caller_drops_its_queued_check(stored: str) -> None:
    """A client that hangs up leaves no scrypt work queued behind it."""
    release = threading.Event()
    check = CountingCheck()

    def blocking(secret: str, encoded: str) -> bool:
        release.wait(5)
        return check(secret, encoded)

    verifier = SecretVerifier(check=blocking, workers=1)
    try:
        first = asyncio.create_task(verifier.verify("w-running", stored))
        queued = [asyncio.create_task(verifier.verify(f"w{i}", stored)) for i in range(4)]
        await asyncio.sleep(0.01)
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        release.set()
        assert await first is False
        await asyncio.sleep(0.05)
        assert check.calls == 1
    finally:
        release.set()
        verifier.close()


async def test_one_cancelled_caller_does_not_cancel_a_shared_check(stored: str) -> None:
    verifier = SecretVerifier()
    try:
        a = asyncio.create_task(verifier.verify("right-secret", stored))
        b = asyncio.create_task(verifier.verify("right-secret", stored))
        await asyncio.sleep(0)
        a.cancel()
        assert await b is True
        assert verifier.scrypt_runs == 1
        assert verifier.known("right-secret", stored)
    finally:
        verifier.close()


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        SecretVerifier(max_entries=0)
    with pytest.raises(ValueError):
        SecretVerifier(ttl_seconds=0)
