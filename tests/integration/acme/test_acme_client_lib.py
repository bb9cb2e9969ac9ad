"""Certbot's own protocol library (`acme.client.ClientV2` over `ClientNetwork`) against a
gateway listening on a loopback port, for the edge cases real clients rarely exercise:
EAB registration (RFC 8555 §7.3.4), key change (§7.3.5), account and authorization
deactivation (§7.3.6, §7.5.2), ARI (RFC 9773), revocation with the certificate's own key
(§7.6) and the badNonce retry (§6.5). The library is synchronous, so it runs in a thread
while the gateway serves on the test's event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import josepy as jose
import pytest
import requests
from acme import challenges, errors, messages
from acme import jws as acme_jws
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.app import create_app
from gateway.config import Config, load_config
from tests.helpers.acmeclient import csr_der
from tests.helpers.acmeharness import AlpnResponder, Responder, check_chain
from tests.helpers.dnsserver import DnsServer
from tests.integration.acme.conftest import acme_environ

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    """A gateway on a real port whose public base URL is that port's URL, so the URLs in
    its responses are the ones the library requests (and signs, §6.4)."""

    base_url: str
    config: Config
    bootstrap: dict[str, Any]
    responder: Responder

    @property
    def directory_url(self) -> str:
        return str(self.bootstrap["acme_directory"])

    def rest(self, method: str, path: str) -> Any:
        token = self.bootstrap["admin_token"]
        resp = requests.request(
            method, self.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        return resp.json()


@pytest.fixture
async def live(
    aiohttp_server: Any,
    tmp_path: Path,
    database_url: str,
    responder: Responder,
    dns_server: DnsServer,
    alpn_responder: AlpnResponder,
) -> Live:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    config = load_config(
        None,
        environ=acme_environ(tmp_path, database_url, responder, dns_server, alpn_responder, base),
    )
    await aiohttp_server(create_app(config, background=False), port=port)
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    assert bootstrap["acme_directory"].startswith(base + "/")
    return Live(base, config, bootstrap, responder)


async def _sync(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


class Recorder:
    """Every (method, status, problem type) the library's network saw, and whether each
    response carried a Replay-Nonce."""

    def __init__(self, net: ClientNetwork) -> None:
        self.seen: list[tuple[str, int, str]] = []
        self.nonces: list[bool] = []
        send = net._send_request

        def recording(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
            response = send(method, url, *args, **kwargs)
            problem = ""
            if response.headers.get("Content-Type", "").startswith("application/problem+json"):
                problem = str(response.json().get("type", "")).rsplit(":", 1)[-1]
            self.seen.append((method, response.status_code, problem))
            self.nonces.append(bool(response.headers.get("Replay-Nonce")))
            return response

        net._send_request = recording  # type: ignore[method-assign]


def _status(value: Any) -> str:
    """The library types some statuses as messages.Status and others as plain strings."""
    return str(getattr(value, "name", value))


def _key() -> jose.JWKEC:
    return jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


def _client(live: Live, key: jose.JWK, account: Any = None) -> ClientV2:
    net = ClientNetwork(key, account=account, alg=jose.ES256, user_agent="certgate-tests")
    return ClientV2(ClientV2.get_directory(live.directory_url, net), net)


def _register(live: Live, client: ClientV2) -> messages.RegistrationResource:
    assert client.net.key is not None
    eab = messages.ExternalAccountBinding.from_data(
        account_public_key=client.net.key.public_key(),
        kid=live.bootstrap["acme_eab_kid"],
        hmac_key=live.bootstrap["acme_eab_hmac_key"],
        directory=client.directory,
    )
    registration = messages.NewRegistration.from_data(
        email="ops@example.com", terms_of_service_agreed=True, external_account_binding=eab
    )
    return client.new_account(registration)


def _issue(live: Live, client: ClientV2, names: list[str]) -> tuple[str, Any]:
    """newOrder → http-01 through the test responder → finalize; (fullchain, key)."""
    der, key = csr_der(names)
    csr_pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
    order = client.new_order(csr_pem)
    assert client.net.key is not None
    for authz in order.authorizations:
        challb = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
        response, validation = challb.chall.response_and_validation(client.net.key)
        live.responder.tokens[challb.chall.encode("token")] = validation
        client.answer_challenge(challb, response)
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    done = client.poll_and_finalize(order, deadline)
    assert _status(done.body.status) == "valid"
    return str(done.fullchain_pem), key


def _root(live: Live) -> str:
    return (live.config.home / "root-ca.pem").read_text()


async def test_ok_register_with_eab_and_eab_required(live: Live) -> None:
    client = await _sync(_client, live, _key())
    assert client.external_account_required()
    with pytest.raises(messages.Error) as err:
        await _sync(
            client.new_account, messages.NewRegistration.from_data(terms_of_service_agreed=True)
        )
    assert err.value.code == "externalAccountRequired"
    regr = await _sync(_register, live, client)
    assert _status(regr.body.status) == "valid"
    assert regr.uri and "/acme/account/" in regr.uri
    assert regr.body.contact == ("mailto:ops@example.com",)
    # §6.2: newAccount must carry a jwk; the library signs with the kid once it has one.
    with pytest.raises(messages.Error) as err:
        await _sync(_register, live, client)
    assert err.value.code == "malformed" and "jwk" in str(err.value.detail)
    # With the jwk, the same key finds its account (§7.3.1): the library says Conflict.
    client.net.account = None
    with pytest.raises(errors.ConflictError) as conflict:
        await _sync(_register, live, client)
    assert conflict.value.location == regr.uri


async def test_ok_issue_then_key_change(live: Live) -> None:
    old_key, new_key = _key(), _key()
    client = await _sync(_client, live, old_key)
    regr = await _sync(_register, live, client)
    chain, _ = await _sync(_issue, live, client, ["lib.example.com", "127.0.0.1"])
    check_chain(chain, ["lib.example.com", "127.0.0.1"], _root(live))

    # §7.3.5: the inner JWS is signed by the new key (jwk, no nonce) over {account, oldKey}.
    url = client.directory["keyChange"]
    payload = json.dumps({"account": regr.uri, "oldKey": old_key.public_key().to_partial_json()})
    inner = acme_jws.JWS.sign(payload.encode(), key=new_key, alg=jose.ES256, nonce=None, url=url)
    reply = await _sync(client._post, url, inner)
    assert reply.status_code == 200

    client.net.key = new_key
    again = await _sync(client.query_registration, regr)
    assert again.uri == regr.uri and _status(again.body.status) == "valid"
    chain, _ = await _sync(_issue, live, client, ["after-change.example.com"])
    check_chain(chain, ["after-change.example.com"], _root(live))

    # The old key no longer names any account.
    stale = await _sync(_client, live, old_key)
    with pytest.raises(messages.Error) as err:
        await _sync(
            stale.new_account,
            messages.NewRegistration.from_data(only_return_existing=True),
        )
    assert err.value.code == "accountDoesNotExist"


async def test_ok_deactivate_authorization_then_account(live: Live) -> None:
    client = await _sync(_client, live, _key())
    regr = await _sync(_register, live, client)
    der, _ = csr_der(["deact.example.com"])
    csr_pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
    order = await _sync(client.new_order, csr_pem)
    (authz,) = order.authorizations
    gone = await _sync(client.deactivate_authorization, authz)
    assert _status(gone.body.status) == "deactivated"
    # §7.1.6: an order with a deactivated authorization is invalid.
    polled = await _sync(client._post_as_get, order.uri)
    assert polled.json()["status"] == "invalid"

    closed = await _sync(client.deactivate_registration, regr)
    assert _status(closed.body.status) == "deactivated"
    # §7.3.6: a deactivated account's requests are refused.
    with pytest.raises(messages.Error) as err:
        await _sync(client.new_order, csr_pem)
    assert err.value.code == "unauthorized"


async def test_ok_ari_and_revocation_by_certificate_key(live: Live) -> None:
    client = await _sync(_client, live, _key())
    await _sync(_register, live, client)
    chain, cert_key = await _sync(_issue, live, client, ["ari.example.com"])
    leaf = check_chain(chain, ["ari.example.com"], _root(live))

    # RFC 9773 §4.2: a renewal time inside the suggested window (the last third of the
    # validity, ending before expiry), and the next check about six hours out.
    when, next_check = await _sync(client.renewal_time, chain.encode())
    assert when is not None
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert leaf.not_valid_after_utc - lifetime / 3 <= when <= leaf.not_valid_after_utc
    hours = (next_check - dt.datetime.now()).total_seconds() / 3600
    assert 5.9 < hours <= 6.01

    # §7.6: signed with the certificate's key (jwk), no account involved.
    by_cert_key = await _sync(_client, live, jose.JWKEC(key=cert_key))
    await _sync(by_cert_key.revoke, leaf, 1)
    with pytest.raises(messages.Error) as err:
        await _sync(by_cert_key.revoke, leaf, 1)
    assert err.value.code == "alreadyRevoked"
    listed = await _sync(live.rest, "GET", "/api/v1/applications/demo/certificates?limit=50")
    serial = format(leaf.serial_number, "x")
    (stored,) = [c for c in listed["items"] if c["serial"] == serial]
    assert stored["status"] == "revoked"
    # Revoked: ARI now says renew right away.
    when, _ = await _sync(client.renewal_time, chain.encode())
    assert when is not None and when <= dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


async def test_ok_bad_nonce_is_retried_once(live: Live) -> None:
    client = await _sync(_client, live, _key())
    regr = await _sync(_register, live, client)
    recorder = Recorder(client.net)
    # A nonce the server never issued (or one a crash lost): the library's only nonce.
    client.net._nonces.clear()
    client.net._nonces.add(b"never-issued-by-the-server-0123")
    again = await _sync(client.query_registration, regr)
    assert again.uri == regr.uri
    posts = [s for s in recorder.seen if s[0] == "POST"]
    # One badNonce, then the library's single retry with a fresh nonce succeeds (§6.5).
    assert posts == [("POST", 400, "badNonce"), ("POST", 200, "")], recorder.seen
    # §6.5: the badNonce answer itself carries a fresh nonce (this library still asks
    # newNonce for one, since it drops error responses' nonces).
    assert recorder.nonces[0] is True
