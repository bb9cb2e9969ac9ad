"""The service graph shared by the HTTP app and the CLI, so both call the same code."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import Config
from gateway.core.clock import SystemClock
from gateway.core.enrollment import EnrollmentService
from gateway.core.errors import NotFound
from gateway.core.model import AuditEvent
from gateway.events.bus import EventBus
from gateway.events.dispatcher import Dispatcher
from gateway.events.metrics import Metrics
from gateway.events.outbox import AlertOutbox
from gateway.events.scheduler import ExpiryScanner
from gateway.pki.kms import Kms, RootKey
from gateway.pki.signer import CaSigner
from gateway.pki.urls import GatewayUrls
from gateway.pki.verifier import SecretVerifier
from gateway.services.approvals import approval_gate
from gateway.services.crl import CrlService
from gateway.services.ocsp import OcspService
from gateway.targets import TargetResolver
from store.db import Database, Tx
from store.migrate import upgrade


@dataclass
class Services:
    config: Config
    db: Database
    kms: Kms
    signer: CaSigner
    urls: GatewayUrls
    clock: SystemClock
    events: EventBus
    metrics: Metrics
    enrollment: EnrollmentService[Tx]
    crl: CrlService
    targets: TargetResolver
    # The one checker of scrypt-hashed secrets (API tokens, EST passphrases, SCEP static
    # challenges), made with the graph: one bounded scrypt executor and one bounded memo
    # of verified secrets per process, whoever asks.
    verifier: SecretVerifier = field(default_factory=SecretVerifier)
    # Alert delivery (gateway.events): the outbox workers and the expiry scans of this
    # process; gateway.app starts their loops when it runs background tasks.
    dispatcher: Dispatcher | None = None
    scanner: ExpiryScanner | None = None
    # The OCSP responder (RFC 6960) of the CAs whose keys are held here (open_services).
    ocsp: OcspService | None = None

    async def close(self) -> None:
        self.verifier.close()
        await self.db.close()


def prepare_home(config: Config) -> None:
    """The home (0700) and an embedded database file (0600), before anything writes them:
    it holds the root key and the database with the wrapped CA keys."""
    config.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    _private_sqlite_file(config.database_url)


def _private_sqlite_file(url: str) -> None:
    """Create an embedded database file as 0600 before SQLite does (it would use the umask);
    SQLite gives its -wal/-shm files the database file's permissions."""
    if not url.startswith("sqlite") or ":memory:" in url or "///" not in url:
        return
    path = Path(url.split("///", 1)[1].split("?", 1)[0])
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def write_private_file(path: Path, text: str) -> None:
    """Write atomically with mode 0600 (the file holds secrets)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def open_services(config: Config, *, migrate: bool = True) -> Services:
    prepare_home(config)
    if migrate:
        await upgrade(config.database_url)
    db = Database.create(config.database_url, echo=config.database.echo)
    root = RootKey.load(config.home, config.root_key)

    async def wrapped_key(project_id: uuid.UUID) -> bytes:
        async with db.transaction(read_only=True) as tx:
            project = await tx.projects.get(project_id)
        if project is None:
            raise NotFound(f"project {project_id} not found")
        return project.wrapped_data_key

    kms = Kms(root, wrapped_key)
    urls = GatewayUrls(config.base_url)
    signer = CaSigner(kms, urls)
    clock = SystemClock()
    events = EventBus()
    metrics = Metrics()
    crl = CrlService(db, signer, clock, config.pki)
    enrollment = EnrollmentService(
        db,
        signer,
        clock,
        events,
        approvals=approval_gate(db, clock, events),
        revocation=crl,
        outbox=AlertOutbox(clock),
    )
    services = Services(
        config, db, kms, signer, urls, clock, events, metrics, enrollment, crl, TargetResolver(db)
    )
    services.ocsp = OcspService(db, signer, clock)
    dispatcher = Dispatcher(db, kms, clock, config)
    services.dispatcher = dispatcher
    services.scanner = ExpiryScanner(db, clock, config, on_recorded=dispatcher.wake)

    async def count(event: AuditEvent) -> None:
        if event.action in ("certificate.issued", "certificate.renewed"):
            metrics.issued.labels(
                profile=str(event.details.get("profile")), method=str(event.details.get("method"))
            ).inc()
        elif event.action == "certificate.revoked":
            metrics.revoked.labels(reason=str(event.details.get("reason"))).inc()

    async def wake(event: AuditEvent) -> None:
        # After the commit of an issuance or revocation: its deliveries may be waiting.
        if event.action.startswith("certificate."):
            dispatcher.wake()

    events.subscribe(count)
    events.subscribe(wake)
    return services
