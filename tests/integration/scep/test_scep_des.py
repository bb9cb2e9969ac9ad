"""Single-DES envelopes (RFC 8894 §3.5.2 names AES and 3DES only): refused unless the SCEP
settings allow them for old devices; each one allowed is logged as a warning. The demo
allows them (micromdm's scepclient still sends DES)."""

from __future__ import annotations

import logging

import pytest

from gateway.core.errors import InvalidInput
from gateway.core.methods import ScepSettings
from gateway.core.scep import FailInfo
from tests.helpers import scepclient as sc
from tests.integration.scep.conftest import SETTINGS, STATIC


async def enroll(scep, cipher: str, tid: str) -> sc.Reply:
    device = sc.Requester.new("des.test")
    csr = sc.make_csr(device.key, "des.test", STATIC, sans=("des.test",))
    reply: sc.Reply = await scep.enroll(device, csr, cipher=cipher, transaction_id=tid)
    return reply


async def test_fail_des_refused_when_not_allowed(scep) -> None:
    view = await scep.api("PATCH", SETTINGS, {"allow_des": False})
    assert view["allow_des"] is False
    reply = await enroll(scep, "des", "t-des-refused")
    assert reply.status == 2  # FAILURE
    assert reply.fail_info == FailInfo.BAD_ALG
    total = (await scep.api("GET", "/api/v1/applications/demo/certificates"))["total"]
    assert total == 0
    # Other ciphers are unaffected.
    assert (await enroll(scep, "aes128_cbc", "t-aes")).status == 0
    assert (await enroll(scep, "tripledes_3key", "t-3des")).status == 0


async def test_ok_des_allowed_with_a_warning(scep, caplog: pytest.LogCaptureFixture) -> None:
    view = await scep.api("PATCH", SETTINGS, {"allow_des": True})
    assert view["allow_des"] is True
    with caplog.at_level(logging.WARNING, logger="certgate.scep"):
        reply = await enroll(scep, "des", "t-des-allowed")
    assert reply.status == 0, reply
    assert reply.cipher == "des"
    assert any("single DES" in r.getMessage() for r in caplog.records)


def test_fail_new_settings_refuse_des() -> None:
    # Settings without allow_des (as a newly enabled profile stores them) refuse it.
    assert ScepSettings.from_dict({"enabled": True}).allow_des is False
    with pytest.raises(InvalidInput, match="boolean"):
        ScepSettings.from_dict({"enabled": True, "allow_des": "yes"})
