"""Certificate serial numbers (re-exported as `gateway.pki.signer.random_serial`)."""

from __future__ import annotations

import secrets

# RFC 5280 §4.1.2.2: serials are positive, at most 20 octets, and (CA/B Forum BR
# §7.1) carry at least 64 bits of CSPRNG output; we use 158 random bits. Setting bit
# 158 fixes the length at 159 bits, so the DER INTEGER is always exactly 20 octets
# with a clear sign bit (no 0x00 pad, never negative, never 0).
_SERIAL_BITS = 159


def random_serial() -> int:
    return secrets.randbits(_SERIAL_BITS - 1) | (1 << (_SERIAL_BITS - 1))
