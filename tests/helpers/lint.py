"""pkilint's RFC 5280 certificate linter (the `lint_pkix_cert` validators), for tests that
must fail on any certificate the gateway issues with an error in it."""

from __future__ import annotations

from typing import Any

from pkilint import loader
from pkilint.pkix import certificate, extension, name
from pkilint.validation import ValidationFindingSeverity


def _validator() -> Any:
    # The same validator set as pkilint's own `lint_pkix_cert lint` command.
    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def rfc5280_errors(pem: str) -> list[str]:
    """Every finding of severity ERROR or worse, as `code @ node path`."""
    document = loader.RFC5280CertificateDocumentLoader().load_pem_document(pem, "issued")
    found = []
    for result in _validator().validate(document.root):
        for finding in result.finding_descriptions:
            if finding.finding.severity <= ValidationFindingSeverity.ERROR:
                found.append(f"{finding.finding.code} @ {result.node.path}")
    return found
