"""`certgate token create`: a working, new token each time; unknown principals refused."""

from __future__ import annotations

import pytest
from cli_helpers import TOKEN_RE, Cli

from gateway.core.clock import SystemClock
from gateway.core.errors import Unauthorized
from gateway.pki.verifier import SecretVerifier
from gateway.services.auth import Authenticator
from store.db import Database


def test_token_create_prints_a_working_token(cli: Cli) -> None:
    output = cli.ok("token", "create", "--principal", "admin", "--name", "ci")
    lines = output.splitlines()
    assert len(lines) == 1, output
    token = lines[0]
    assert TOKEN_RE.match(token), token

    async def check(db: Database) -> tuple[str, str]:
        auth = Authenticator(db, SystemClock(), SecretVerifier())
        who = await auth.authenticate(f"Bearer {token}")
        with pytest.raises(Unauthorized):
            await auth.authenticate(f"Bearer {token[:-4]}AAAA")
        return who.principal.name, who.token.name

    assert cli.with_db(check) == ("admin", "ci")


def test_each_token_create_gives_a_new_token(cli: Cli) -> None:
    first = cli.ok("token", "create", "--principal", "admin").strip()
    second = cli.ok("token", "create", "--principal", "admin").strip()
    assert first != second


def test_token_create_for_an_unknown_principal_fails_cleanly(cli: Cli) -> None:
    output = cli.fail("token", "create", "--principal", "nobody")
    assert output == "Error: no principal named 'nobody'\n"
