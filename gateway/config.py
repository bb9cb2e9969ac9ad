"""Settings: defaults < TOML file < CERTGATE_<SECTION>__<KEY> environment variables.

The names are part of the operator contract in DESIGN.md ("Contract for operators").
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "CERTGATE_"


class ConfigError(ValueError):
    pass


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    http_port: int = 8080
    https_port: int = 8443
    # URLs that appear in responses and certificates (CRL/AIA). Behind a TLS-terminating
    # proxy set this to the public address.
    public_base_url: str = ""
    https_base_url: str = ""
    max_body_bytes: int = 256 * 1024
    # Addresses whose X-Forwarded-For / client-certificate headers are trusted.
    trusted_proxies: list[str] = field(default_factory=list)
    # The header in which a trusted TLS-terminating proxy passes the client certificate
    # (URL-encoded PEM: nginx $ssl_client_escaped_cert, HAProxy, Envoy's XFCC differ).
    client_cert_header: str = "X-SSL-Client-Cert"
    # Slow or stalled clients (gateway/listeners.py): a request head must be complete
    # within header_timeout_s of the connection opening or of the previous response (also
    # the idle keep-alive time and the TLS handshake's limit), its body within
    # body_timeout_s of the head; past max_connections new connections get 503.
    header_timeout_s: float = 15.0
    body_timeout_s: float = 30.0
    max_connections: int = 1000
    # Bearer tokens on plain HTTP (RFC 6750 §5.3: they MUST travel over TLS): "refuse",
    # "allow", or "auto": refused when public_base_url is https (the clients are meant to
    # use TLS, so a plain-HTTP caller is a misconfiguration leaking its token).
    tokens_over_http: str = "auto"

    def refuses_tokens_over_http(self) -> bool:
        if self.tokens_over_http == "auto":
            return self.public_base_url.strip().lower().startswith("https://")
        return self.tokens_over_http == "refuse"


@dataclass
class TlsConfig:
    enabled: bool = True
    cert_file: str = ""
    key_file: str = ""
    # Hostnames / IPs for the self-issued server certificate.
    server_names: list[str] = field(default_factory=lambda: ["localhost", "127.0.0.1", "::1"])


@dataclass
class DatabaseConfig:
    url: str = ""
    echo: bool = False


@dataclass
class AcmeConfig:
    http01_port: int = 80
    tlsalpn01_port: int = 443
    resolvers: list[str] = field(default_factory=list)


@dataclass
class PkiConfig:
    key_type: str = "ec-p256"
    root_validity_days: int = 3650
    intermediate_validity_days: int = 1825
    crl_validity_hours: int = 24
    # Regenerate a CRL when less than this much of its lifetime is left.
    crl_refresh_hours: int = 6


@dataclass
class LoggingConfig:
    level: str = "INFO"


@dataclass
class SmtpConfig:
    """The mail relay of email alerts. Empty host: email channels fail their deliveries
    with "SMTP is not configured" (visible in the deliveries list) instead of vanishing."""

    host: str = ""
    port: int = 587
    username: str = ""
    password: str = ""
    # The envelope and header sender; TOML and the environment spell it `from`.
    from_: str = "certgate@localhost"
    # STARTTLS before AUTH (RFC 3207); refused when the server does not offer it.
    starttls: bool = True
    # CA bundle to verify the server's certificate with; empty: the system's.
    ca_file: str = ""
    timeout_s: float = 10.0


@dataclass
class EventsConfig:
    # Seconds between expiry scans (one process at a time, under a database lease).
    scan_interval_s: float = 3600.0
    # The first retry delay of a failed delivery; it doubles per attempt, with jitter.
    retry_base_s: float = 30.0
    # Webhook, Slack and PagerDuty targets in private, loopback or link-local ranges are
    # refused unless this is set (a webhook URL would otherwise reach internal services).
    allow_private_targets: bool = False
    # Attempts of one delivery before it is marked failed.
    max_attempts: int = 8
    # Seconds one attempt may take (connect, send, answer).
    send_timeout_s: float = 10.0
    # False: this process sends nothing (deliveries wait, pending, for a process that
    # does); for maintenance, and for fuzzing the API, whose made-up URLs must not be called.
    delivery_enabled: bool = True


@dataclass
class Config:
    home: Path = field(default_factory=lambda: Path(".certgate"))
    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    acme: AcmeConfig = field(default_factory=AcmeConfig)
    pki: PkiConfig = field(default_factory=PkiConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    # CERTGATE_ROOT_KEY; kept out of the TOML on purpose (a secret in a config file
    # tends to end up in a repository).
    root_key: str | None = None

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.home.resolve() / 'certgate.db'}"

    @property
    def base_url(self) -> str:
        if self.server.public_base_url:
            return self.server.public_base_url.rstrip("/")
        return f"http://{_url_host(self.server.host)}:{self.server.http_port}"

    @property
    def https_base_url(self) -> str:
        if self.server.https_base_url:
            return self.server.https_base_url.rstrip("/")
        bind_all = ("127.0.0.1", "0.0.0.0", "::")  # noqa: S104 - compared, not bound
        host = "localhost" if self.server.host in bind_all else self.server.host
        return f"https://{_url_host(host)}:{self.server.https_port}"


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a bind-all address is not reachable as a URL
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


_SECTIONS = ("server", "tls", "database", "acme", "pki", "logging", "smtp", "events")
# Setting names that are Python keywords, as the dataclass field spells them.
_FIELD_NAMES = {("smtp", "from"): "from_"}


def _coerce(value: Any, annotation: str, where: str) -> Any:
    try:
        if annotation == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if annotation == "int":
            # int() would accept True and silently truncate 8080.5 to 8080.
            if isinstance(value, bool | float):
                raise ValueError(value)
            return int(value)
        if annotation == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(value)
            return number
        if annotation.startswith("list"):
            if isinstance(value, list):
                return [str(v) for v in value]
            return [v.strip() for v in str(value).split(",") if v.strip()]
        return str(value)
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a valid {annotation}") from None


def _apply(section_obj: Any, values: dict[str, Any], source: str, section: str) -> None:
    hints = {f.name: str(f.type) for f in dataclasses.fields(section_obj)}
    for key, value in values.items():
        key = _FIELD_NAMES.get((section, key), key)
        if key not in hints:
            raise ConfigError(f"{source}: unknown setting '{section}.{key}'")
        setattr(section_obj, key, _coerce(value, hints[key], f"{source} {section}.{key}"))


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if environ is None else environ)
    config = Config()
    if env.get("CERTGATE_HOME"):
        config.home = Path(env["CERTGATE_HOME"])
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
        for key, value in data.items():
            if key == "home":
                if not env.get("CERTGATE_HOME"):
                    config.home = Path(str(value))
            elif key in _SECTIONS and isinstance(value, dict):
                _apply(getattr(config, key), value, str(path), key)
            else:
                raise ConfigError(f"{path}: unknown setting '{key}'")
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in _SECTIONS:
            # A typo here would otherwise be silently ignored and the default used.
            raise ConfigError(f"{name}: unknown settings section '{section}'")
        _apply(getattr(config, section), {key: value}, name, section)
    config.root_key = env.get("CERTGATE_ROOT_KEY") or None
    _check_ports(config)
    return config


def _check_ports(config: Config) -> None:
    ports = {
        "server.http_port": config.server.http_port,
        "server.https_port": config.server.https_port,
        "acme.http01_port": config.acme.http01_port,
        "acme.tlsalpn01_port": config.acme.tlsalpn01_port,
        "smtp.port": config.smtp.port,
    }
    for where, port in ports.items():
        if not 0 < port < 65536:
            raise ConfigError(f"{where}: {port} is not a TCP port (1-65535)")
    # Zero would make a worker or a scan spin; a negative delay is meaningless.
    positive = {
        "events.scan_interval_s": config.events.scan_interval_s,
        "events.retry_base_s": config.events.retry_base_s,
        "events.max_attempts": config.events.max_attempts,
        "events.send_timeout_s": config.events.send_timeout_s,
        "smtp.timeout_s": config.smtp.timeout_s,
        "server.header_timeout_s": config.server.header_timeout_s,
        "server.body_timeout_s": config.server.body_timeout_s,
        "server.max_connections": config.server.max_connections,
    }
    for where, number in positive.items():
        if not number > 0:
            raise ConfigError(f"{where}: {number} must be greater than 0")
    if config.server.tokens_over_http not in ("auto", "allow", "refuse"):
        raise ConfigError(
            f"server.tokens_over_http: {config.server.tokens_over_http!r} is not "
            "auto, allow or refuse"
        )
