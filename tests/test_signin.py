"""Sign-in with local accounts (ASSISTANT_AUTH=local): the form, the session cookie, and the
attacks on it (forged, expired, ended, removed user, open redirect, guessing), plus the
page's Gradio API refusing callers without a session."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from assistant.identity.auth import COOKIE
from assistant.identity.users import UserStore
from tests.fakes import FakeIndex, FakeUpstream
from tests.test_gateway import assert_openai_error

CHAT = {"model": "helpdesk-demo", "messages": [{"role": "user", "content": "VPN TP-204?"}]}


@pytest.fixture
def users(tmp_path):
    store = UserStore(tmp_path / "users.sqlite", max_failures=3, lockout_s=60)
    store.add("alice", ["hr"], password="alice-password")
    store.add("bob", [], password="bob-password")
    yield store
    store.close()


def make(tmp_path, users, **overrides):
    from assistant.settings import load_settings
    from tests.conftest import gateway_app

    settings = load_settings(home=tmp_path, auth="local", **overrides)
    index = FakeIndex(readers={"acceptable-use-policy.pdf": {"hr"}})
    app = gateway_app(
        settings, upstream=FakeUpstream(), index=index, users=users, login_delay_s=0.0
    )
    return TestClient(app, follow_redirects=False)


def use_cookie(http, value: str) -> None:
    http.cookies.clear()
    http.cookies.set(COOKIE, value)


def sign_in(http, name, password, next_url="/"):
    http.cookies.clear()
    return http.post("/login", data={"username": name, "password": password, "next": next_url})


def test_sign_in_sets_a_safe_cookie_and_acts_as_that_user(tmp_path, users):
    with make(tmp_path, users) as http:
        page = http.get("/")
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
        form = http.get("/login")
        assert form.status_code == 200 and 'name="password"' in form.text
        assert_openai_error(http.get("/v1/me"), 401)

        wrong = sign_in(http, "alice", "not-her-password")
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        assert COOKIE not in wrong.cookies
        unknown = sign_in(http, "mallory", "whatever-pw")
        assert unknown.status_code == 401 and unknown.text == wrong.text.replace(
            'value="alice"', 'value="mallory"'
        )  # the same answer: no telling which names exist

        ok = sign_in(http, "alice", "alice-password", "/?tab=ask")
        assert ok.status_code == 303 and ok.headers["location"] == "/?tab=ask"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie
        me = http.get("/v1/me").json()
        assert me == {"user": "alice", "groups": ["everyone", "hr"], "admin": False}
        answer = http.post("/v1/chat/completions", json=CHAT).json()
        assert "acceptable-use-policy.pdf" in [s["source"] for s in answer["sources"]]
        assert all(s["url"].startswith("/v1/sources/") for s in answer["sources"])

        bob = TestClient(http.app, follow_redirects=False)
        sign_in(bob, "bob", "bob-password")
        sources = [
            s["source"] for s in bob.post("/v1/chat/completions", json=CHAT).json()["sources"]
        ]
        assert sources and "acceptable-use-policy.pdf" not in sources


def test_forged_expired_ended_and_orphaned_sessions_are_refused(tmp_path, users):
    with make(tmp_path, users) as http:
        sign_in(http, "alice", "alice-password")
        value = http.cookies[COOKIE]
        session, _, signature = value.rpartition(".")
        assert http.get("/v1/me").status_code == 200

        for forged in (f"{session}.{'0' * len(signature)}", f"x{session}.{signature}", "junk"):
            use_cookie(http, forged)
            resp = http.get("/v1/me")
            assert_openai_error(resp, 401)
            assert resp.json()["error"]["code"] == "no_session"
        use_cookie(http, value)
        assert http.get("/v1/me").status_code == 200

        users._store.execute("UPDATE sessions SET expires_at = 0")
        assert_openai_error(http.get("/v1/me"), 401)

        sign_in(http, "alice", "alice-password")
        assert http.get("/v1/me").status_code == 200
        old = http.cookies[COOKIE]
        out = http.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        use_cookie(http, old)  # a copy of the cookie kept from before signing out
        assert_openai_error(http.get("/v1/me"), 401)

        sign_in(http, "bob", "bob-password")
        assert http.get("/v1/me").json()["user"] == "bob"
        users.remove("bob")
        assert_openai_error(http.get("/v1/me"), 401)


def test_sign_in_refuses_open_redirects_and_locks_out_guessing(tmp_path, users):
    with make(tmp_path, users) as http:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "x"):
            resp = sign_in(http, "alice", "alice-password", target)
            assert resp.status_code == 303 and resp.headers["location"] == "/", target
        for _ in range(3):
            assert sign_in(http, "bob", "guess-guess").status_code == 401
        assert sign_in(http, "bob", "bob-password").status_code == 401  # locked for now
        form = http.get("/login?next=%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
        assert "<script>alert(1)" not in form.text  # the next field is escaped, not injected


def test_keys_still_work_beside_sessions(tmp_path, users):
    _, key = users.create_key("alice")
    with make(tmp_path, users, api_keys=["svc"]) as http:
        headers = {"Authorization": f"Bearer {key}"}
        assert http.get("/v1/me", headers=headers).json()["user"] == "alice"
        service = http.get("/v1/me", headers={"Authorization": "Bearer svc"}).json()
        assert service == {"user": "service", "groups": ["everyone"], "admin": False}


def test_the_page_and_its_gradio_api_want_a_session(tmp_path, users):
    import gradio as gr

    from assistant.gateway.session import page_guard
    from assistant.settings import load_settings
    from ui.chat_page import build_page

    http = make(tmp_path, users)
    settings = load_settings(home=tmp_path, auth="local")
    page = build_page("http://127.0.0.1:9/v1", "helpdesk-demo")
    gr.mount_gradio_app(
        http.app, page, path="/", auth_dependency=page_guard(http.app.state.services.auth, settings)
    )
    with http:
        assert http.get("/").status_code == 303
        for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json"):
            assert http.get(path).status_code == 401, path
        call = http.post("/gradio_api/call/ask", json={"data": ["vpn", [], "m", {}]})
        assert call.status_code == 401
        sign_in(http, "alice", "alice-password")
        assert http.get("/config").status_code == 200
        assert http.get("/").status_code == 200


def test_behind_an_auth_proxy_the_page_gets_a_session_for_the_proxys_user(tmp_path, users):
    import gradio as gr

    from assistant.gateway.session import page_guard
    from assistant.settings import load_settings
    from tests.conftest import gateway_app
    from ui.chat_page import build_page

    settings = load_settings(home=tmp_path, auth="header", trusted_proxies=["10.0.0.0/24"])
    app = gateway_app(settings, upstream=FakeUpstream(), index=FakeIndex(), users=users)
    page = build_page("http://127.0.0.1:9/v1", "helpdesk-demo")
    gr.mount_gradio_app(
        app, page, path="/", auth_dependency=page_guard(app.state.services.auth, settings)
    )
    proxy = {"X-Forwarded-User": "erin@corp.example", "X-Forwarded-Groups": "hr,it"}
    with TestClient(app, client=("10.0.0.9", 4000), follow_redirects=False) as http:
        first = http.get("/", headers=proxy)
        assert first.status_code == 200 and COOKIE in first.cookies
        # the page's own API calls carry only the session it was given
        me = http.get("/v1/me").json()
        assert me["user"] == "erin@corp.example" and me["groups"] == ["everyone", "hr", "it"]
        assert http.get("/config").status_code == 200
        # the proxy says the groups changed: the next page load takes them over
        http.get("/", headers={**proxy, "X-Forwarded-Groups": "it"})
        assert http.get("/v1/me").json()["groups"] == ["everyone", "it"]
    with TestClient(app, client=("192.168.1.5", 4000)) as outsider:
        assert outsider.get("/", headers=proxy).status_code == 403
        assert outsider.get("/config", headers=proxy).status_code == 401
