"""A tiny authoritative DNS server on loopback for ACME tests: every name under the
configured suffixes answers A 127.0.0.1; TXT records come from `txt`, which tests fill in,
from `txt_file` (JSON) and from `txt_dir`, where hooks of real clients (certbot's
--manual-auth-hook) drop one file per record name holding one value per line:

    echo "$CERTBOT_VALIDATION" >> "$TXT_DIR/_acme-challenge.$CERTBOT_DOMAIN"
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self, suffixes: tuple[str, ...] = ("example.com", "test", "localhost")) -> None:
        self.suffixes = tuple(s.lower().rstrip(".") for s in suffixes)
        self.txt: dict[str, list[str]] = {}
        self.txt_file: Path | None = None  # JSON {name: [values]} merged on each query
        self.txt_dir: Path | None = None  # file <name>: one value per line, read on each query
        self.queries: list[tuple[str, str]] = []  # (name, type) of every question answered
        # Names that answer AAAA with this address instead of A 127.0.0.1.
        self.aaaa: dict[str, str] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            # Wake the receive loop now rather than at its next timeout.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wake:
                wake.sendto(b"", ("127.0.0.1", self.port))
        self._thread.join(timeout=2)
        self._sock.close()

    def _records(self) -> dict[str, list[str]]:
        records = {k.lower().rstrip("."): list(v) for k, v in self.txt.items()}
        if self.txt_file is not None and self.txt_file.exists():
            try:
                for name, values in json.loads(self.txt_file.read_text() or "{}").items():
                    records.setdefault(name.lower().rstrip("."), []).extend(values)
            except ValueError:
                pass
        if self.txt_dir is not None and self.txt_dir.is_dir():
            for path in self.txt_dir.iterdir():
                try:
                    lines = path.read_text().split()
                except OSError:
                    continue  # removed by a cleanup hook meanwhile
                records.setdefault(path.name.lower().rstrip("."), []).extend(lines)
        return records

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            response = dns.message.make_response(query)
            response.flags |= 0x0400  # AA
            for question in query.question:
                name = question.name.to_text(omit_final_dot=True).lower()
                self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
                if question.rdtype == dns.rdatatype.TXT:
                    values = self._records().get(name, [])
                    if values:
                        response.answer.append(
                            dns.rrset.from_text_list(
                                question.name, 1, "IN", "TXT", [f'"{v}"' for v in values]
                            )
                        )
                elif name in self.aaaa:
                    if question.rdtype == dns.rdatatype.AAAA:
                        response.answer.append(
                            dns.rrset.from_text(question.name, 1, "IN", "AAAA", self.aaaa[name])
                        )
                elif any(name == s or name.endswith("." + s) for s in self.suffixes):
                    if question.rdtype == dns.rdatatype.A:
                        response.answer.append(
                            dns.rrset.from_text(question.name, 1, "IN", "A", "127.0.0.1")
                        )
            self._sock.sendto(response.to_wire(), peer)
