"""gateway.config.load_config: defaults < TOML file < CERTGATE_<SECTION>__<KEY> variables.

Every call passes `environ=` explicitly, so the real process environment never leaks in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, ConfigError, load_config
from tests.helpers.data import read_text

FULL_TOML = read_text("config", "full.toml")


def write(tmp_path: Path, text: str, name: str = "certgate.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- defaults ---------------------------------------------------------------------------


def test_defaults_without_file_or_environment() -> None:
    config = load_config(None, environ={})

    assert config.home == Path(".certgate")
    assert config.database.url == ""
    assert config.database_url == (
        f"sqlite+aiosqlite:///{Path('.certgate').resolve() / 'certgate.db'}"
    )
    assert config.server.host == "127.0.0.1"
    assert config.server.http_port == 8080
    assert config.server.https_port == 8443
    assert config.server.public_base_url == ""
    assert config.tls.enabled is True
    assert config.tls.server_names == ["localhost", "127.0.0.1", "::1"]
    assert config.acme.http01_port == 80
    assert config.acme.tlsalpn01_port == 443
    assert config.acme.resolvers == []
    assert config.pki.key_type == "ec-p256"
    assert config.logging.level == "INFO"
    assert config.smtp.host == ""
    assert config.smtp.port == 587
    assert config.smtp.starttls is True
    assert config.smtp.from_ == "certgate@localhost"
    assert config.events.scan_interval_s == 3600
    assert config.events.retry_base_s == 30
    assert config.events.allow_private_targets is False
    assert config.root_key is None
    assert config.base_url == "http://127.0.0.1:8080"
    assert config.https_base_url == "https://localhost:8443"


def test_defaults_do_not_share_mutable_lists() -> None:
    first = load_config(None, environ={})
    first.tls.server_names.append("mutated.test")
    first.acme.resolvers.append("1.1.1.1:53")

    second = load_config(None, environ={})
    assert second.tls.server_names == ["localhost", "127.0.0.1", "::1"]
    assert second.acme.resolvers == []


def test_certgate_home_moves_the_embedded_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = load_config(None, environ={"CERTGATE_HOME": str(home)})

    assert config.home == home
    assert config.database_url == f"sqlite+aiosqlite:///{home.resolve() / 'certgate.db'}"


def test_empty_certgate_home_keeps_the_default() -> None:
    assert load_config(None, environ={"CERTGATE_HOME": ""}).home == Path(".certgate")


def test_explicit_database_url_wins_over_the_embedded_default(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://u@h:5432/d"
    config = load_config(
        None, environ={"CERTGATE_HOME": str(tmp_path), "CERTGATE_DATABASE__URL": url}
    )
    assert config.database_url == url


def test_root_key_comes_only_from_the_environment() -> None:
    config = load_config(None, environ={"CERTGATE_ROOT_KEY": "a2V5"})
    assert config.root_key == "a2V5"
    assert load_config(None, environ={"CERTGATE_ROOT_KEY": ""}).root_key is None


def test_the_shipped_config_file_loads_and_matches_the_defaults() -> None:
    shipped = Path(__file__).resolve().parents[2] / "conf" / "certgate.toml"
    assert load_config(shipped, environ={}) == load_config(None, environ={})


# --- TOML file ------------------------------------------------------------------------


def test_toml_file_sets_every_section(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_TOML), environ={})

    assert config.home == Path("/srv/certgate")
    assert config.server.host == "0.0.0.0"
    assert config.server.http_port == 9080
    assert config.server.https_port == 9443
    assert config.server.max_body_bytes == 1024
    assert config.server.trusted_proxies == ["10.0.0.1", "10.0.0.2"]
    assert config.tls.enabled is False
    assert config.tls.cert_file == "/etc/certgate/tls.crt"
    assert config.tls.key_file == "/etc/certgate/tls.key"
    assert config.tls.server_names == ["pki.example.com"]
    assert config.database_url == "postgresql+asyncpg://certgate@db:5432/certgate"
    assert config.database.echo is True
    assert config.acme.http01_port == 5002
    assert config.acme.tlsalpn01_port == 5001
    assert config.acme.resolvers == ["127.0.0.1:5353"]
    assert config.pki.key_type == "ec-p384"
    assert config.pki.root_validity_days == 100
    assert config.pki.intermediate_validity_days == 50
    assert config.pki.crl_validity_hours == 12
    assert config.pki.crl_refresh_hours == 3
    assert config.logging.level == "DEBUG"
    assert (config.smtp.host, config.smtp.port) == ("smtp.example.com", 2525)
    assert (config.smtp.username, config.smtp.password) == ("alerts", "mail-secret")
    assert config.smtp.from_ == "pki@example.com"
    assert config.smtp.starttls is False
    assert config.smtp.ca_file == "/etc/certgate/smtp-ca.pem"
    assert config.smtp.timeout_s == 5.5
    assert config.events.scan_interval_s == 60.0
    assert config.events.retry_base_s == 0.5
    assert config.events.max_attempts == 3
    assert config.events.send_timeout_s == 2.0
    assert config.events.allow_private_targets is True
    # The trailing slash of public_base_url is dropped.
    assert config.base_url == "https://pki.example.com"


def test_toml_file_may_set_only_some_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[server]\nhttp_port = 9999\n"), environ={})

    assert config.server.http_port == 9999
    assert config.server.https_port == 8443
    assert config.server.host == "127.0.0.1"
    assert config.tls.enabled is True


def test_empty_toml_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), environ={}) == Config()


def test_path_may_be_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nhttp_port = 9001\n")
    assert load_config(str(path), environ={}).server.http_port == 9001


def test_certgate_home_beats_home_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'home = "/from/file"\n')
    env_home = tmp_path / "from-env"

    assert load_config(path, environ={}).home == Path("/from/file")
    assert load_config(path, environ={"CERTGATE_HOME": str(env_home)}).home == env_home


# --- environment overrides ------------------------------------------------------------


def case(name: str, value: str, toml: str, read: Any, expected: Any, id: str) -> Any:
    """One override: the variable, a TOML snippet that sets something else, the result."""
    return pytest.param(name, value, toml, read, expected, id=id)


ENV_CASES = [
    case(
        "CERTGATE_SERVER__HTTP_PORT",
        "9180",
        "[server]\nhttp_port = 1\n",
        lambda c: c.server.http_port,
        9180,
        "ok/http_port",
    ),
    case(
        "CERTGATE_SERVER__HTTPS_PORT",
        "9543",
        "[server]\nhttps_port = 1\n",
        lambda c: c.server.https_port,
        9543,
        "ok/https_port",
    ),
    case(
        "CERTGATE_SERVER__HOST",
        "::",
        "[server]\nhost = '10.1.1.1'\n",
        lambda c: c.server.host,
        "::",
        "ok/host",
    ),
    case(
        "CERTGATE_SERVER__PUBLIC_BASE_URL",
        "https://env.example.com",
        "[server]\npublic_base_url = 'https://file.example.com'\n",
        lambda c: c.base_url,
        "https://env.example.com",
        "ok/public_base_url",
    ),
    case(
        "CERTGATE_DATABASE__URL",
        "postgresql+asyncpg://env@db/x",
        "[database]\nurl = 'postgresql+asyncpg://file@db/x'\n",
        lambda c: c.database_url,
        "postgresql+asyncpg://env@db/x",
        "ok/database_url",
    ),
    case(
        "CERTGATE_ACME__HTTP01_PORT",
        "8888",
        "[acme]\nhttp01_port = 5002\n",
        lambda c: c.acme.http01_port,
        8888,
        "ok/http01_port",
    ),
    case(
        "CERTGATE_ACME__TLSALPN01_PORT",
        "8444",
        "[acme]\ntlsalpn01_port = 5001\n",
        lambda c: c.acme.tlsalpn01_port,
        8444,
        "ok/tlsalpn01_port",
    ),
    case(
        "CERTGATE_ACME__RESOLVERS",
        "1.1.1.1:53, 8.8.8.8:53 ,,",
        "[acme]\nresolvers = ['127.0.0.1:5353']\n",
        lambda c: c.acme.resolvers,
        ["1.1.1.1:53", "8.8.8.8:53"],
        "ok/resolvers-comma-list",
    ),
    case(
        "CERTGATE_ACME__RESOLVERS",
        "",
        "[acme]\nresolvers = ['127.0.0.1:5353']\n",
        lambda c: c.acme.resolvers,
        [],
        "ok/resolvers-empty",
    ),
    case(
        "CERTGATE_TLS__ENABLED",
        "false",
        "[tls]\nenabled = true\n",
        lambda c: c.tls.enabled,
        False,
        "ok/tls-false",
    ),
    case(
        "CERTGATE_TLS__ENABLED",
        "0",
        "[tls]\nenabled = true\n",
        lambda c: c.tls.enabled,
        False,
        "ok/tls-0",
    ),
    case(
        "CERTGATE_TLS__ENABLED",
        " Off ",
        "[tls]\nenabled = true\n",
        lambda c: c.tls.enabled,
        False,
        "ok/tls-off",
    ),
    case(
        "CERTGATE_TLS__ENABLED",
        "YES",
        "[tls]\nenabled = false\n",
        lambda c: c.tls.enabled,
        True,
        "ok/tls-yes",
    ),
    case(
        "CERTGATE_TLS__ENABLED",
        "on",
        "[tls]\nenabled = false\n",
        lambda c: c.tls.enabled,
        True,
        "ok/tls-on",
    ),
    case(
        "CERTGATE_TLS__SERVER_NAMES",
        "a.test,b.test",
        "[tls]\nserver_names = ['file.test']\n",
        lambda c: c.tls.server_names,
        ["a.test", "b.test"],
        "ok/server_names",
    ),
    case(
        "CERTGATE_PKI__KEY_TYPE",
        "rsa-2048",
        "[pki]\nkey_type = 'ec-p384'\n",
        lambda c: c.pki.key_type,
        "rsa-2048",
        "ok/pki_key_type",
    ),
    case(
        "CERTGATE_LOGGING__LEVEL",
        "debug",
        "[logging]\nlevel = 'WARNING'\n",
        lambda c: c.logging.level,
        "debug",
        "ok/logging_level",
    ),
    case(
        "CERTGATE_SMTP__HOST",
        "mail.test",
        "[smtp]\nhost = 'file.test'\n",
        lambda c: c.smtp.host,
        "mail.test",
        "ok/smtp_host",
    ),
    case(
        "CERTGATE_SMTP__PORT",
        "2525",
        "[smtp]\nport = 25\n",
        lambda c: c.smtp.port,
        2525,
        "ok/smtp_port",
    ),
    case(
        "CERTGATE_SMTP__USERNAME",
        "env-user",
        "[smtp]\nusername = 'file-user'\n",
        lambda c: c.smtp.username,
        "env-user",
        "ok/smtp_username",
    ),
    case(
        "CERTGATE_SMTP__PASSWORD",
        "env-pass",
        "[smtp]\npassword = 'file-pass'\n",
        lambda c: c.smtp.password,
        "env-pass",
        "ok/smtp_password",
    ),
    case(
        "CERTGATE_SMTP__FROM",
        "alerts@env.test",
        "[smtp]\nfrom = 'alerts@file.test'\n",
        lambda c: c.smtp.from_,
        "alerts@env.test",
        "ok/smtp_from",
    ),
    case(
        "CERTGATE_SMTP__STARTTLS",
        "false",
        "[smtp]\nstarttls = true\n",
        lambda c: c.smtp.starttls,
        False,
        "ok/smtp_starttls",
    ),
    case(
        "CERTGATE_EVENTS__SCAN_INTERVAL_S",
        "5",
        "[events]\nscan_interval_s = 60\n",
        lambda c: c.events.scan_interval_s,
        5.0,
        "ok/events_scan_interval",
    ),
    case(
        "CERTGATE_EVENTS__RETRY_BASE_S",
        "0.25",
        "[events]\nretry_base_s = 10\n",
        lambda c: c.events.retry_base_s,
        0.25,
        "ok/events_retry_base",
    ),
    case(
        "CERTGATE_EVENTS__ALLOW_PRIVATE_TARGETS",
        "true",
        "[events]\nallow_private_targets = false\n",
        lambda c: c.events.allow_private_targets,
        True,
        "ok/events_allow_private_targets",
    ),
    case(
        "CERTGATE_EVENTS__DELIVERY_ENABLED",
        "false",
        "[events]\ndelivery_enabled = true\n",
        lambda c: c.events.delivery_enabled,
        False,
        "ok/events_delivery_enabled",
    ),
    case(
        "CERTGATE_DATABASE__ECHO",
        "true",
        "[database]\necho = false\n",
        lambda c: c.database.echo,
        True,
        "ok/database_echo",
    ),
]


@pytest.mark.parametrize(("name", "value", "toml", "read", "expected"), ENV_CASES)
def test_environment_sets_a_value(
    name: str, value: str, toml: str, read: Any, expected: Any
) -> None:
    assert read(load_config(None, environ={name: value})) == expected


@pytest.mark.parametrize(("name", "value", "toml", "read", "expected"), ENV_CASES)
def test_environment_beats_the_toml_file(
    tmp_path: Path, name: str, value: str, toml: str, read: Any, expected: Any
) -> None:
    path = write(tmp_path, toml)
    assert read(load_config(path, environ={})) != expected  # the file alone says otherwise

    assert read(load_config(path, environ={name: value})) == expected


def test_environment_overrides_together(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_TOML)
    config = load_config(
        path,
        environ={
            "CERTGATE_SERVER__HTTP_PORT": "7080",
            "CERTGATE_SERVER__HTTPS_PORT": "7443",
            "CERTGATE_SERVER__HOST": "127.0.0.1",
            "CERTGATE_SERVER__PUBLIC_BASE_URL": "",
            "CERTGATE_TLS__ENABLED": "true",
        },
    )

    assert config.server.http_port == 7080
    assert config.server.https_port == 7443
    assert config.tls.enabled is True
    # An empty public_base_url from the environment clears the file's value.
    assert config.base_url == "http://127.0.0.1:7080"
    assert config.https_base_url == "https://localhost:7443"
    # Untouched settings keep the file's values.
    assert config.acme.http01_port == 5002
    assert config.database.url == "postgresql+asyncpg://certgate@db:5432/certgate"


def test_unrelated_variables_are_ignored() -> None:
    config = load_config(
        None,
        environ={
            "PATH": "/usr/bin",
            "SERVER__HTTP_PORT": "1",  # no CERTGATE_ prefix
            "CERTGATE_TEST_DATABASE_URL": "postgresql+asyncpg://x/y",  # no section separator
            "CERTGATE_ROOT_KEY": "",
        },
    )
    assert config == Config()


def test_the_real_environment_is_used_when_environ_is_omitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CERTGATE_SERVER__HTTP_PORT", "6060")
    assert load_config(None).server.http_port == 6060
    # An explicit mapping replaces the process environment entirely.
    assert load_config(None, environ={}).server.http_port == 8080


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"CERTGATE_SERVER__HTTP_PORT": "eighty"},
            "CERTGATE_SERVER__HTTP_PORT server.http_port: 'eighty' is not a valid int",
            id="fail/env-bad-int",
        ),
        pytest.param(
            {"CERTGATE_SERVER__HTTPS_PORT": ""},
            "server.https_port: '' is not a valid int",
            id="fail/env-empty-int",
        ),
        pytest.param(
            {"CERTGATE_ACME__HTTP01_PORT": "80.5"},
            "acme.http01_port: '80.5' is not a valid int",
            id="fail/env-decimal-int",
        ),
        pytest.param(
            {"CERTGATE_TLS__ENABLED": "maybe"},
            "CERTGATE_TLS__ENABLED tls.enabled: 'maybe' is not a valid bool",
            id="fail/env-bad-bool",
        ),
        pytest.param(
            {"CERTGATE_TLS__ENABLED": ""},
            "tls.enabled: '' is not a valid bool",
            id="fail/env-empty-bool",
        ),
        pytest.param(
            {"CERTGATE_SERVER__PORT": "80"},
            "CERTGATE_SERVER__PORT: unknown setting 'server.port'",
            id="fail/env-unknown-key",
        ),
        pytest.param(
            {"CERTGATE_ACME__HTTP01__PORT": "80"},
            "unknown setting 'acme.http01__port'",
            id="fail/env-extra-separator",
        ),
        pytest.param(
            {"CERTGATE_SERVR__HTTP_PORT": "80"},
            "CERTGATE_SERVR__HTTP_PORT: unknown settings section 'servr'",
            id="fail/env-unknown-section",
        ),
        pytest.param(
            {"CERTGATE_SERVER__HTTP_PORT": "70000"},
            "server.http_port: 70000 is not a TCP port (1-65535)",
            id="fail/env-port-range",
        ),
        pytest.param(
            {"CERTGATE_ACME__HTTP01_PORT": "0"},
            "acme.http01_port: 0 is not a TCP port (1-65535)",
            id="fail/env-port-zero",
        ),
        pytest.param(
            {"CERTGATE_SMTP__PORT": "0"},
            "smtp.port: 0 is not a TCP port (1-65535)",
            id="fail/env-smtp-port",
        ),
        pytest.param(
            {"CERTGATE_EVENTS__RETRY_BASE_S": "0"},
            "events.retry_base_s: 0.0 must be greater than 0",
            id="fail/env-retry-base-zero",
        ),
        pytest.param(
            {"CERTGATE_EVENTS__SCAN_INTERVAL_S": "nan"},
            "events.scan_interval_s: 'nan' is not a valid float",
            id="fail/env-scan-interval-nan",
        ),
        pytest.param(
            {"CERTGATE_EVENTS__SCAN_INTERVAL_S": "hourly"},
            "events.scan_interval_s: 'hourly' is not a valid float",
            id="fail/env-scan-interval-text",
        ),
    ],
)
def test_bad_environment_is_a_config_error(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ=environ)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        pytest.param(
            "[server]\nport = 80\n", "unknown setting 'server.port'", id="fail/toml-unknown-key"
        ),
        pytest.param(
            "[servers]\nhttp_port = 80\n",
            "unknown setting 'servers'",
            id="fail/toml-unknown-section",
        ),
        pytest.param("colour = 'blue'\n", "unknown setting 'colour'", id="fail/toml-unknown-top"),
        pytest.param(
            "server = 5\n", "unknown setting 'server'", id="fail/toml-section-not-a-table"
        ),
        pytest.param(
            "[server]\nhttp_port = 'eighty'\n",
            "server.http_port: 'eighty' is not a valid int",
            id="fail/toml-bad-int",
        ),
        pytest.param(
            "[server]\nhttp_port = true\n",
            "server.http_port: True is not a valid int",
            id="fail/toml-bool-as-int",
        ),
        pytest.param(
            "[server]\nhttp_port = 8080.5\n",
            "server.http_port: 8080.5 is not a valid int",
            id="fail/toml-float-as-int",
        ),
        pytest.param(
            "[tls]\nenabled = 'sometimes'\n",
            "tls.enabled: 'sometimes' is not a valid bool",
            id="fail/toml-bad-bool",
        ),
        pytest.param(
            "[tls]\nenabled = 2\n", "tls.enabled: 2 is not a valid bool", id="fail/toml-int-as-bool"
        ),
    ],
)
def test_bad_toml_setting_is_a_config_error(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert expected in message
    assert str(path) in message  # says which file


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"config file .*nope\.toml does not exist"):
        load_config(missing, environ={})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[server\nhttp_port = 1\n", id="fail/unclosed-table"),
        pytest.param("[server]\nhttp_port = \n", id="fail/missing-value"),
        pytest.param("[server]\nhttp_port = 1\nhttp_port = 2\n", id="fail/duplicate-key"),
    ],
)
def test_invalid_toml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert f"config file {path} is not valid TOML" in str(info.value)
    # The parser's own explanation (with a line number) is kept.
    assert "line" in str(info.value)


def test_config_error_is_a_value_error() -> None:
    # The CLI turns ValueError into a clean message; ConfigError must be one.
    assert issubclass(ConfigError, ValueError)


# --- URL derivation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "base_url", "https_base_url"),
    [
        pytest.param({}, "http://127.0.0.1:8080", "https://localhost:8443", id="ok/default"),
        pytest.param(
            {"CERTGATE_SERVER__HOST": "0.0.0.0"},
            "http://127.0.0.1:8080",
            "https://localhost:8443",
            id="ok/bind-all-ipv4",
        ),
        pytest.param(
            {"CERTGATE_SERVER__HOST": "::"},
            "http://127.0.0.1:8080",
            "https://localhost:8443",
            id="ok/bind-all-ipv6",
        ),
        pytest.param(
            {"CERTGATE_SERVER__HOST": "::1"},
            "http://[::1]:8080",
            "https://[::1]:8443",
            id="ok/ipv6-literal-bracketed",
        ),
        pytest.param(
            {"CERTGATE_SERVER__HOST": "pki.internal", "CERTGATE_SERVER__HTTP_PORT": "80"},
            "http://pki.internal:80",
            "https://pki.internal:8443",
            id="ok/named-host",
        ),
        pytest.param(
            {
                "CERTGATE_SERVER__HOST": "0.0.0.0",
                "CERTGATE_SERVER__HTTP_PORT": "9080",
                "CERTGATE_SERVER__HTTPS_PORT": "9443",
            },
            "http://127.0.0.1:9080",
            "https://localhost:9443",
            id="ok/ports-follow",
        ),
        pytest.param(
            {
                "CERTGATE_SERVER__PUBLIC_BASE_URL": "https://pki.example.com/",
                "CERTGATE_SERVER__HTTPS_BASE_URL": "https://tls.example.com:4443/",
            },
            "https://pki.example.com",
            "https://tls.example.com:4443",
            id="ok/explicit-urls-win",
        ),
    ],
)
def test_url_derivation(environ: dict[str, str], base_url: str, https_base_url: str) -> None:
    config = load_config(None, environ=environ)
    assert config.base_url == base_url
    assert config.https_base_url == https_base_url
