"""A real `certgate serve` process listening on loopback, for real clients."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CERTGATE = str(Path(sys.executable).with_name("certgate"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    home: Path
    env: dict[str, str]
    http_port: int
    https_port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def bootstrap(self) -> dict[str, Any]:
        return json.loads((self.home / "bootstrap.json").read_text())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CERTGATE, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result


def start_gateway(home: Path, database_url: str, extra_env: dict[str, str] | None = None) -> Served:
    http_port, https_port = free_port(), free_port()
    env = {
        **os.environ,
        "CERTGATE_HOME": str(home),
        "CERTGATE_DATABASE__URL": database_url,
        "CERTGATE_SERVER__HTTP_PORT": str(http_port),
        "CERTGATE_SERVER__HTTPS_PORT": str(https_port),
        **(extra_env or {}),
    }
    home.mkdir(parents=True, exist_ok=True)
    log = home.parent / f"serve-{http_port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [CERTGATE, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    served = Served(home, env, http_port, https_port, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("certgate serve exited:\n" + log.read_text())
        try:
            with urllib.request.urlopen(f"{served.base_url}/readyz", timeout=2) as resp:
                if resp.status == 200 and (home / "bootstrap.json").exists():
                    return served
        except OSError:
            pass
        time.sleep(0.05)
    process.terminate()
    raise AssertionError("certgate serve did not become ready:\n" + log.read_text())


def stop_gateway(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    gateway = start_gateway(tmp_path / "home", database_url)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)
    # A traceback in the server log means some request ended in an unhandled error.
    assert "Traceback" not in gateway.log.read_text(), gateway.log.read_text()


@dataclass
class AcmeServed:
    """A gateway whose ACME validators reach the real clients on loopback: http-01 on
    `http01_port` (where certbot/lego listen), names resolved by a local DNS server."""

    gateway: Served
    http01_port: int
    tlsalpn01_port: int
    dns: Any


@pytest.fixture
def acme_served(tmp_path: Path, database_url: str) -> Iterator[AcmeServed]:
    from tests.helpers.dnsserver import DnsServer

    dns_server = DnsServer().start()
    http01, tlsalpn01 = free_port(), free_port()
    gateway = start_gateway(
        tmp_path / "home",
        database_url,
        {
            "CERTGATE_ACME__HTTP01_PORT": str(http01),
            "CERTGATE_ACME__TLSALPN01_PORT": str(tlsalpn01),
            "CERTGATE_ACME__RESOLVERS": dns_server.address,
        },
    )
    try:
        yield AcmeServed(gateway, http01, tlsalpn01, dns_server)
    finally:
        stop_gateway(gateway)
        dns_server.stop()
    assert "Traceback" not in gateway.log.read_text(), gateway.log.read_text()


# ../shared/clients beside the checkout (CI lays a copy there); CERTGATE_CLIENTS_DIR overrides.
CLIENTS_DIR = Path(
    os.environ.get("CERTGATE_CLIENTS_DIR")
    or Path(__file__).resolve().parents[2].parent / "shared" / "clients"
)


def client_available(binary: str) -> pytest.MarkDecorator:
    """Skip when a real client is absent on a developer machine; in CI (.ci/run installs
    them) a missing client must fail instead, so the tests can never silently not run."""
    missing = shutil.which(binary) is None and not os.environ.get("CI")
    return pytest.mark.skipif(missing, reason=f"{binary} is not installed")
