"""Prometheus metrics, one registry per app (no module-level globals, so several apps
in one test process do not share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "certgate_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "certgate_http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.issued = Counter(
            "certgate_certificates_issued",
            "Certificates issued",
            ["profile", "method"],
            registry=self.registry,
        )
        self.issuance_latency = Histogram(
            "certgate_issuance_duration_seconds",
            "Time from request to stored certificate",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.revoked = Counter(
            "certgate_certificates_revoked",
            "Certificates revoked",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
