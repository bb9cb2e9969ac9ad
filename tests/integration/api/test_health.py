"""/healthz, /readyz and /metrics."""

from __future__ import annotations


async def test_ok_health_ready_metrics(gateway) -> None:
    assert (await (await gateway.client.get("/healthz")).json())["status"] == "ok"
    assert (await (await gateway.client.get("/readyz")).json())["database"] == "ok"
    await gateway.post(gateway.issue_path(), {"sans": ["m.test"]}, status=201)
    text = await (await gateway.client.get("/metrics")).text()
    assert 'certgate_certificates_issued_total{method="api",profile="tls-server"} 1.0' in text
    assert "certgate_http_request_duration_seconds_bucket" in text
