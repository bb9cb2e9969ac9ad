"""Public URL templates shared by the router and by things that must embed URLs outside a
request (certificate CRL/AIA extensions, bootstrap.json). Handlers use named routes."""

from __future__ import annotations

import uuid

CRL_PATH = "/pki/crl/{ca_id}.crl"
CA_CERT_PATH = "/pki/ca/{ca_id}.crt"
# RFC 6960 §A.1: POST to the responder URL, or GET with the base64 request appended.
OCSP_PATH = "/pki/ocsp/{ca_id}"
OCSP_GET_PATH = OCSP_PATH + "/{ocsp_request:.+}"


class GatewayUrls:
    """Implements gateway.pki.ca.CaUrls for the configured public base URL."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def crl_url(self, ca_id: uuid.UUID) -> str:
        return self.base_url + CRL_PATH.format(ca_id=ca_id)

    def issuer_url(self, ca_id: uuid.UUID) -> str:
        return self.base_url + CA_CERT_PATH.format(ca_id=ca_id)

    def ocsp_url(self, ca_id: uuid.UUID) -> str:
        return self.base_url + OCSP_PATH.format(ca_id=ca_id)
