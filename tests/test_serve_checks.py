"""``assistant serve``'s checks before anything starts: who may reach an open server.

In-process and without vLLM: the checks run first, so a refused set-up never gets as far as
the port, the store or the engine."""

from __future__ import annotations

import sys

import pytest

import assistant.gateway.serve
import assistant.gateway.services
from assistant.errors import UserError
from assistant.gateway.serve import OPEN_PAGE_NOTE, check_auth, run_server
from assistant.settings import load_settings


@pytest.fixture(autouse=True)
def no_engine(monkeypatch):
    """Fail the test, rather than start vLLM, if a check lets a set-up through."""

    def refuse(*args, **kwargs):
        raise AssertionError("the engine was started")

    monkeypatch.setattr(assistant.gateway.services, "EngineProcess", refuse)
    for name in ("API_KEYS", "AUTH", "HOST", "CONFIG", "TRUSTED_PROXIES", "OIDC_ISSUER"):
        monkeypatch.delenv(f"ASSISTANT_{name}", raising=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "helpdesk.corp"])
def test_an_open_server_listens_only_on_loopback(tmp_path, host):
    said: list[str] = []
    with pytest.raises(UserError, match=f"refusing to listen on {host} with ASSISTANT_AUTH=none"):
        check_auth(load_settings(home=tmp_path, host=host), log=said.append)
    for loopback in ("127.0.0.1", "::1", "localhost"):
        check_auth(load_settings(home=tmp_path, host=loopback), log=said.append)
    assert said == []  # open on loopback: nothing to note
    # keys or sign-in make a public address fine
    check_auth(load_settings(home=tmp_path, host=host, auth="local"), log=said.append)
    assert said == []


def test_the_command_refuses_in_one_line_at_once(tmp_path, monkeypatch, capsys):
    from assistant.cli.main import main

    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["assistant", "serve", "--host", "0.0.0.0"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("error: refusing to listen on 0.0.0.0 with ASSISTANT_AUTH=none")
    assert "ASSISTANT_API_KEYS" in err
    assert not (tmp_path / "index").exists()  # nothing was opened


def test_with_api_keys_the_server_notes_that_the_page_answers_anyone(tmp_path, monkeypatch):
    said: list[str] = []
    keyed = load_settings(home=tmp_path, host="0.0.0.0", api_keys=["k1"])
    check_auth(keyed, log=said.append)
    assert said == [OPEN_PAGE_NOTE] and "ASSISTANT_AUTH=local" in OPEN_PAGE_NOTE

    # the server says it first, before the port, the store or the engine
    def busy(host, port):
        raise UserError("port 8000 is in use")

    monkeypatch.setattr(assistant.gateway.serve, "check_port_free", busy)
    said.clear()
    with pytest.raises(UserError, match="in use"):
        run_server(keyed, log=said.append)
    assert said == [OPEN_PAGE_NOTE]
    # with sign-in there is nothing to note
    check_auth(load_settings(home=tmp_path, host="0.0.0.0", auth="local"), log=said.append)
    assert said == [OPEN_PAGE_NOTE]


def test_sign_in_set_ups_that_are_not_complete_are_refused(tmp_path):
    with pytest.raises(UserError, match="ASSISTANT_AUTH=oidc needs ASSISTANT_OIDC_ISSUER"):
        check_auth(load_settings(home=tmp_path, auth="oidc"))
    with pytest.raises(UserError, match="ASSISTANT_AUTH=header needs ASSISTANT_TRUSTED_PROXIES"):
        check_auth(load_settings(home=tmp_path, auth="header"))
