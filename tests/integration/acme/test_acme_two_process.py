"""Two gateway instances on one database serve one ACME client (issue 4: nonces, accounts,
orders, authorizations and challenges live in the database, so several processes behind
one address serve one client).

Instance A and instance B are two `create_app(config)` applications, each with its own
engine, services and validators, sharing CERTGATE_HOME (the root key that unwraps the CA
key) and the database, and announcing the same public base URL, as processes behind one
load balancer would. Every request of a flow goes to the other instance than the one
before, so every nonce a request carries was issued by the other instance, and every
resource it touches was created (or validated) by the other one. On SQLite and
PostgreSQL; the last test runs two real `certgate serve` processes on PostgreSQL with
certbot going through a round-robin proxy.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from multidict import CIMultiDict

from gateway.app import create_app
from gateway.config import load_config
from tests.helpers.acmeclient import AcmeClient, Reply, b64, csr_der
from tests.helpers.acmeharness import Responder
from tests.helpers.databases import Seed
from tests.helpers.dnsserver import DnsServer

PUBLIC_BASE_URL = "http://127.0.0.1:8080"
Http = TestClient[web.Request, web.Application]


@dataclass
class Alternating:
    """Stands where AcmeClient expects one aiohttp TestClient; each request goes to the
    next instance in turn, and `served` records (instance, method, path) of every one."""

    instances: dict[str, Http]
    turn: int = 0
    served: list[tuple[str, str, str]] = field(default_factory=list)

    def _next(self, method: str, path: str) -> Http:
        names = list(self.instances)
        name = names[self.turn % len(names)]
        self.turn += 1
        self.served.append((name, method, path))
        return self.instances[name]

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._next("GET", path).get(path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Any:
        return self._next("HEAD", path).head(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self._next("POST", path).post(path, **kwargs)

    def last(self) -> str:
        return self.served[-1][0]


@dataclass
class TwoInstances:
    a: Http
    b: Http
    bootstrap: dict[str, Any]
    responder: Responder

    def path(self, url: str) -> str:
        return "/" + url.split("/", 3)[3]

    def alternating(self, start: str = "a") -> Alternating:
        order = ("a", "b") if start == "a" else ("b", "a")
        return Alternating({name: getattr(self, name) for name in order})

    async def client(self, http: Any) -> AcmeClient:
        return await AcmeClient(http, self.path(self.bootstrap["acme_directory"])).start()


@pytest.fixture
async def two_instances(
    aiohttp_client: Callable[[web.Application], Awaitable[Http]],
    tmp_path: Path,
    database_url: str,
    responder: Responder,
    dns_server: DnsServer,
    seed_gateway: Seed,
) -> TwoInstances:
    environ = {
        "CERTGATE_HOME": str(tmp_path / "home"),
        "CERTGATE_DATABASE__URL": database_url,
        "CERTGATE_TLS__ENABLED": "false",
        "CERTGATE_SERVER__PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "CERTGATE_ACME__HTTP01_PORT": str(responder.port),
        "CERTGATE_ACME__RESOLVERS": dns_server.address,
    }
    # A starts first (on a copy of a first start's database and home); B finds the
    # organization and only loads config, root key and CA from the shared home and database.
    seed_gateway(load_config(None, environ=environ))
    a = await aiohttp_client(create_app(load_config(None, environ=environ), background=False))
    bootstrap = json.loads((tmp_path / "home" / "bootstrap.json").read_text())
    b = await aiohttp_client(create_app(load_config(None, environ=environ), background=False))
    assert json.loads((tmp_path / "home" / "bootstrap.json").read_text()) == bootstrap
    return TwoInstances(a, b, bootstrap, responder)


async def _poll(client: AcmeClient, url: str, wanted: set[str], seconds: float = 30) -> Reply:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        reply = await client.post(url, None)
        assert reply.status == 200, reply.body
        if reply.body.get("status") in wanted or asyncio.get_running_loop().time() > deadline:
            return reply
        await asyncio.sleep(0.05)


async def _alternating_flow(
    gw: TwoInstances, start: str, name: str
) -> tuple[Alternating, dict[str, str], x509.Certificate]:
    """One complete flow, each request at the other instance than the one before; returns
    where each named step was served and the certificate."""
    http = gw.alternating(start)
    client = await gw.client(http)  # GET directory
    boot = gw.bootstrap
    at: dict[str, str] = {"directory": http.last()}

    client.nonce = await client.new_nonce()
    at["newNonce"] = http.last()
    account = await client.register(boot["acme_eab_kid"], boot["acme_eab_hmac_key"])
    assert account.status == 201, account.body
    at["newAccount"] = http.last()

    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
    )
    assert order.status == 201, order.body
    at["newOrder"] = http.last()
    order_url = order.headers["Location"]

    authz = await client.post(order.body["authorizations"][0], None)
    assert authz.status == 200 and authz.body["status"] == "pending", authz.body
    at["authz"] = http.last()
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    gw.responder.tokens[chall["token"]] = f"{chall['token']}.{client.key.thumbprint()}"
    answered = await client.post(chall["url"], {})
    assert answered.status == 200, answered.body
    at["challenge"] = http.last()

    ready = await _poll(client, order_url, {"ready", "invalid"})
    assert ready.body["status"] == "ready", ready.body
    der, key = csr_der([name])
    final = await client.post(order.body["finalize"], {"csr": b64(der)})
    assert final.status == 200, final.body
    at["finalize"] = http.last()
    valid = await _poll(client, order_url, {"valid", "invalid"})
    assert valid.body["status"] == "valid", valid.body

    chain = await client.post(valid.body["certificate"], None)
    assert chain.status == 200, chain.text
    assert chain.headers["Content-Type"] == "application/pem-certificate-chain"
    at["download"] = http.last()
    certs = x509.load_pem_x509_certificates(chain.text.encode())
    leaf = certs[0]
    assert leaf.public_key() == key.public_key()
    leaf.verify_directly_issued_by(certs[1])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [name]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku

    # Strict alternation: no instance served two requests in a row.
    served_by = [s[0] for s in http.served]
    assert all(x != y for x, y in itertools.pairwise(served_by)), http.served
    return http, at, leaf


@pytest.mark.parametrize(
    "start", [pytest.param("a", id="ok/a-first"), pytest.param("b", id="ok/b-first")]
)
async def test_ok_flow_alternates_between_instances(
    two_instances: TwoInstances, start: str
) -> None:
    http, at, leaf = await _alternating_flow(two_instances, start, f"two-{start}.example.com")
    other = "b" if start == "a" else "a"
    # The fixed part of the flow lands deterministically: the nonce issued by one instance
    # is spent at the other, the account made at one orders at the other, the challenge
    # is answered (and validated) at the instance that did not create the order.
    assert at["directory"] == start and at["newNonce"] == other
    assert at["newAccount"] == start and at["newOrder"] == other
    assert at["authz"] == start and at["challenge"] == other
    # Polls alternate too, so finalize and download each land on some instance; both
    # instances served POSTs after the order became ready.
    assert {name for name, method, _ in http.served[len(at) :] if method == "POST"} == {"a", "b"}
    assert leaf.not_valid_before_utc < leaf.not_valid_after_utc


async def test_ok_pinned_steps(two_instances: TwoInstances) -> None:
    """The sequence of the issue, pinned: nonce from A used at B, newAccount at A,
    newOrder at B, challenge at A, finalize at B, download at A. One client switches its
    connection before each step; the nonce it carries is always the one the other
    instance returned with the previous reply."""
    gw = two_instances
    boot = gw.bootstrap
    client = await gw.client(gw.a)

    client.nonce = await client.new_nonce()  # issued by A ...
    client.http = gw.b  # ... spent at B, on a lookup B answers: no such account yet
    lookup = await client.post(
        client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True
    )
    assert lookup.status == 400 and lookup.problem == "accountDoesNotExist", lookup.body

    client.http = gw.a  # newAccount at A (with B's nonce)
    created = await client.register(boot["acme_eab_kid"], boot["acme_eab_hmac_key"])
    assert created.status == 201, created.body
    client.http = gw.b  # B finds the account A created
    found = await client.post(
        client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True
    )
    assert found.status == 200 and found.headers["Location"] == client.kid, found.body

    client.http = gw.a  # the account B found, read at A
    read = await client.post(client.kid or "", None)
    assert read.status == 200 and read.body["status"] == "valid", read.body
    client.http = gw.b  # newOrder at B
    order = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "pin.example.com"}]},
    )
    assert order.status == 201, order.body
    order_url = order.headers["Location"]
    client.http = gw.a  # the order B made, read at A
    authz = await client.post(order.body["authorizations"][0], None)
    assert authz.status == 200, authz.body
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    gw.responder.tokens[chall["token"]] = f"{chall['token']}.{client.key.thumbprint()}"
    client.http = gw.b
    seen = await client.post(order_url, None)
    assert seen.body["status"] == "pending", seen.body
    client.http = gw.a  # challenge at A: A runs the validation
    answered = await client.post(chall["url"], {})
    assert answered.status == 200, answered.body
    client.http = gw.b  # ... and B sees its outcome
    ready = await _poll(client, order_url, {"ready", "invalid"})
    assert ready.body["status"] == "ready", ready.body

    der, key = csr_der(["pin.example.com"])
    client.http = gw.b  # finalize at B
    final = await client.post(order.body["finalize"], {"csr": b64(der)})
    assert final.status == 200, final.body
    client.http = gw.a
    valid = await _poll(client, order_url, {"valid", "invalid"})
    assert valid.body["status"] == "valid", valid.body
    chain = await client.post(valid.body["certificate"], None)  # download at A
    assert chain.status == 200, chain.text
    leaf = x509.load_pem_x509_certificates(chain.text.encode())[0]
    assert leaf.public_key() == key.public_key()

    # The account's orders list, asked at B, holds the order created and finalized at B.
    client.http = gw.b
    account = await client.post(client.kid or "", None)
    assert account.status == 200, account.body
    client.http = gw.a
    orders = await client.post(account.body["orders"], None)
    assert orders.status == 200 and order_url in orders.body["orders"], orders.body


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("a", "b", id="fail/used-at-a-replayed-at-b"),
        pytest.param("b", "a", id="fail/used-at-b-replayed-at-a"),
    ],
)
async def test_fail_nonce_replayed_at_other_instance(
    two_instances: TwoInstances, first: str, second: str
) -> None:
    gw = two_instances
    one = await gw.client(getattr(gw, first))
    two = await gw.client(getattr(gw, second))
    two.key = one.key
    boot = gw.bootstrap
    account = await one.register(boot["acme_eab_kid"], boot["acme_eab_hmac_key"])
    assert account.status == 201, account.body
    two.kid = one.kid

    nonce = await one.new_nonce()
    used = await one.post(one.kid or "", None, nonce=nonce)
    assert used.status == 200, used.body
    replayed = await two.post(two.kid or "", None, nonce=nonce)
    assert replayed.status == 400 and replayed.problem == "badNonce", replayed.body
    assert replayed.headers["Content-Type"].startswith("application/problem+json")
    # RFC 8555 §6.5: the error carries a fresh nonce, and that one works (at either end).
    fresh = replayed.headers["Replay-Nonce"]
    assert fresh and fresh != nonce
    retried = await one.post(one.kid or "", None, nonce=fresh)
    assert retried.status == 200, retried.body
    # And the nonce spent at the first instance is spent there too.
    again = await one.post(one.kid or "", None, nonce=nonce)
    assert again.problem == "badNonce", again.body


async def test_ok_concurrent_clients_alternate(two_instances: TwoInstances) -> None:
    """Several clients at once, each alternating, so the two instances (and, on SQLite,
    their two engines on one file) write at the same time."""
    results = await asyncio.gather(
        *(_alternating_flow(two_instances, "ab"[i % 2], f"conc-{i}.example.com") for i in range(4))
    )
    serials = {leaf.serial_number for _, _, leaf in results}
    assert len(serials) == 4


# --- two real processes on one PostgreSQL database ----------------------------------------


@dataclass
class RoundRobin:
    """A plain-HTTP reverse proxy on loopback sending each request to the next backend:
    the "one address" in front of two `certgate serve` processes."""

    backends: list[str]
    port: int = 0
    hits: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def start(self) -> RoundRobin:
        import aiohttp

        session = aiohttp.ClientSession(auto_decompress=False)

        async def forward(request: web.Request) -> web.StreamResponse:
            backend = self.backends[len(self.hits) % len(self.backends)]
            self.hits.append(backend)
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            async with session.request(
                request.method,
                backend + request.path_qs,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                drop = {"content-length", "transfer-encoding", "connection"}
                # A multidict: ACME sends several Link headers (index, up, alternate).
                out = CIMultiDict((k, v) for k, v in resp.headers.items() if k.lower() not in drop)
                return web.Response(status=resp.status, headers=out, body=body)

        async def close(_app: web.Application) -> None:
            await session.close()

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        app.on_cleanup.append(close)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _certbot() -> str | None:
    venv = Path(__file__).resolve().parents[3] / ".venv-clients" / "bin" / "certbot"
    if os.environ.get("CERTBOT"):
        return os.environ["CERTBOT"]
    return str(venv) if venv.exists() else shutil.which("certbot")


@pytest.fixture
async def two_served(tmp_path: Path, database_url: str) -> AsyncIterator[dict[str, Any]]:
    assert database_url.startswith("postgresql"), "mark the test postgresql_only"
    certbot = _certbot()
    if not certbot or not (Path(certbot).exists() or shutil.which(certbot)):
        if os.environ.get("CI"):
            pytest.fail("certbot is not installed, but CI must run the real-client tests")
        pytest.skip("certbot is not installed")
    from tests.e2e.conftest import free_port, start_gateway, stop_gateway

    http01, public = free_port(), free_port()
    env = {
        "CERTGATE_ACME__HTTP01_PORT": str(http01),
        "CERTGATE_SERVER__PUBLIC_BASE_URL": f"http://127.0.0.1:{public}",
    }
    dns = DnsServer().start()
    env["CERTGATE_ACME__RESOLVERS"] = dns.address
    home = tmp_path / "home"
    first = await asyncio.to_thread(start_gateway, home, database_url, env)
    second = None
    try:
        second = await asyncio.to_thread(start_gateway, home, database_url, env)
        proxy = await RoundRobin([first.base_url, second.base_url], port=public).start()
        try:
            yield {
                "certbot": certbot,
                "http01": http01,
                "served": (first, second),
                "proxy": proxy,
                "bootstrap": first.bootstrap,
                "public": f"http://127.0.0.1:{public}",
            }
        finally:
            await proxy.stop()
    finally:
        for gateway in (first, second):
            if gateway is not None:
                await asyncio.to_thread(stop_gateway, gateway)
        dns.stop()
    for gateway in (first, second):
        if gateway is not None:
            assert "Traceback" not in gateway.log.read_text(), gateway.log.read_text()


@pytest.mark.e2e
# Two processes on one SQLite file is not a supported deployment.
@pytest.mark.postgresql_only
async def test_ok_certbot_through_two_processes(two_served: dict[str, Any], tmp_path: Path) -> None:
    """certbot (http-01, EAB) through a round-robin proxy in front of two `certgate serve`
    processes on one PostgreSQL database: every request lands at the other process."""
    boot = two_served["bootstrap"]
    directory = boot["acme_directory"]
    assert directory.startswith(two_served["public"]), directory
    work = tmp_path / "certbot"
    domain = "two-processes.example.com"
    proc = await asyncio.create_subprocess_exec(
        two_served["certbot"],
        "certonly",
        "--non-interactive",
        *("--config-dir", str(work / "config")),
        *("--work-dir", str(work / "work")),
        *("--logs-dir", str(work / "logs")),
        "--standalone",
        *("--preferred-challenges", "http"),
        *("--http-01-port", str(two_served["http01"]), "--http-01-address", "127.0.0.1"),
        *("--server", directory),
        "--agree-tos",
        "--register-unsafely-without-email",
        *("--eab-kid", boot["acme_eab_kid"], "--eab-hmac-key", boot["acme_eab_hmac_key"]),
        *("-d", domain),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    log = work / "logs" / "letsencrypt.log"
    assert proc.returncode == 0, output.decode() + (log.read_text()[-4000:] if log.exists() else "")

    proxy: RoundRobin = two_served["proxy"]
    first, second = two_served["served"]
    assert len(proxy.hits) >= 8, proxy.hits  # directory, nonce, account, order, authz, ...
    assert proxy.hits.count(first.base_url) >= 4 and proxy.hits.count(second.base_url) >= 4

    live = work / "config" / "live" / domain
    leaf = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((live / "chain.pem").read_bytes())
    leaf.verify_directly_issued_by(chain[0])
    root = x509.load_pem_x509_certificate((first.home / "root-ca.pem").read_bytes())
    chain[-1].verify_directly_issued_by(root)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [domain]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
