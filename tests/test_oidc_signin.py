"""Sign-in through a real OpenID provider (django-oauth-toolkit on loopback): the code flow
with PKCE end to end, groups from the ID token, and the attacks on the callback (no flow,
wrong state, a token minted for another nonce)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from assistant.identity.auth import COOKIE
from assistant.identity.oidc import FLOW_COOKIE
from tests.fakes import FakeIndex, FakeUpstream
from tests.oidc_provider import Provider, oidc_provider  # noqa: F401
from tests.test_gateway import assert_openai_error

PUBLIC = "http://127.0.0.1:8765"
CALLBACK = PUBLIC + "/auth/callback"


@pytest.fixture
def setup(tmp_path, oidc_provider: Provider):  # noqa: F811
    from assistant.identity.users import UserStore
    from assistant.settings import load_settings
    from tests.conftest import gateway_app

    oidc_provider.allow_redirect(CALLBACK)
    oidc_provider.add_user("ada", "correct horse", ["HR Team", "admins"], "ada@corp.example")
    oidc_provider.add_user("finn", "finn-password", ["sales"])
    settings = load_settings(
        home=tmp_path, auth="oidc", public_url=PUBLIC, oidc_issuer=oidc_provider.issuer,
        oidc_client_id=oidc_provider.client_id, oidc_client_secret=oidc_provider.client_secret,
    )  # fmt: skip
    users = UserStore(tmp_path / "users.sqlite")
    index = FakeIndex(readers={"acceptable-use-policy.pdf": {"HR-Team"}})
    app = gateway_app(settings, upstream=FakeUpstream(), index=index, users=users)
    with TestClient(app, follow_redirects=False) as http:
        yield http, oidc_provider


def provider_sign_in(url: str, username: str, password: str) -> str:
    """Follow the provider from its authorize URL, signing in; the callback URL it ends at."""
    with httpx.Client(timeout=10) as idp:
        response = idp.get(url)
        for _ in range(6):
            if response.status_code == 200 and 'name="password"' in response.text:
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)
                nxt = re.search(r'name="next" value="([^"]*)"', response.text)
                response = idp.post(str(response.url), data={
                    "csrfmiddlewaretoken": token.group(1), "username": username,
                    "password": password, "next": nxt.group(1).replace("&amp;", "&"),
                })  # fmt: skip
                continue
            assert response.status_code == 302, response.text[:500]
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(CALLBACK):
                return location
            response = idp.get(location)
    raise AssertionError("the provider never sent the browser back")


def start(http) -> tuple[str, str]:
    """GET /login on the app: (the provider URL it sends to, the flow cookie it sets)."""
    resp = http.get("/login?next=/?tab=ask")
    assert resp.status_code == 303
    return resp.headers["location"], resp.cookies[FLOW_COOKIE]


def callback(http, location: str, flow: str | None):
    http.cookies.clear()
    if flow is not None:
        http.cookies.set(FLOW_COOKIE, flow, path="/auth")
    parts = urlsplit(location)
    return http.get(f"{parts.path}?{parts.query}")


def test_sign_in_through_the_provider_with_its_groups(setup):
    http, _ = setup
    assert http.get("/").headers["location"] == "/login?next=/"
    url, flow = start(http)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and "nonce" in query and "state" in query
    assert query["redirect_uri"] == [CALLBACK]
    done = callback(http, provider_sign_in(url, "ada", "correct horse"), flow)
    assert done.status_code == 303 and done.headers["location"] == "/?tab=ask"
    assert "HttpOnly" in done.headers["set-cookie"]
    me = http.get("/v1/me").json()
    assert me == {"user": "ada", "groups": ["HR-Team", "admins", "everyone"], "admin": True}
    # finn (sales) signs in too, and does not see what HR may read
    url, flow = start(http)
    callback(http, provider_sign_in(url, "finn", "finn-password"), flow)
    assert http.get("/v1/me").json()["user"] == "finn"
    chat = {"model": "helpdesk-demo", "messages": [{"role": "user", "content": "policy?"}]}
    sources = [s["source"] for s in http.post("/v1/chat/completions", json=chat).json()["sources"]]
    assert sources and "acceptable-use-policy.pdf" not in sources
    out = http.post("/logout")
    assert out.headers["location"] == "/signed-out"
    assert_openai_error(http.get("/v1/me"), 401)


def test_the_callback_refuses_what_this_browser_did_not_start(setup):
    http, provider = setup
    url, flow = start(http)
    location = provider_sign_in(url, "ada", "correct horse")

    no_flow = callback(http, location, None)
    assert_openai_error(no_flow, 400)
    assert no_flow.json()["error"]["code"] == "bad_flow"
    wrong_state = callback(http, re.sub(r"state=[^&]+", "state=forged", location), flow)
    assert wrong_state.json()["error"]["code"] == "bad_state"
    forged_cookie = callback(
        http, location, flow[:-2] + ("00" if not flow.endswith("00") else "11")
    )
    assert forged_cookie.json()["error"]["code"] == "bad_flow"
    assert COOKIE not in http.cookies

    # A code minted for this flow's state and PKCE verifier but another nonce (as an
    # attacker who replays someone's callback into their own flow would hold) is refused.
    packed = flow.rpartition(".")[0]
    data = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(data["verifier"].encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    params = {"response_type": "code", "client_id": provider.client_id, "redirect_uri": CALLBACK,
              "scope": "openid profile", "state": data["state"], "nonce": "not-this-flows",
              "code_challenge": challenge, "code_challenge_method": "S256"}  # fmt: skip
    minted = provider_sign_in(
        str(httpx.URL(provider.issuer + "/authorize/", params=params)), "ada", "correct horse"
    )
    other_nonce = callback(http, minted, flow)
    assert_openai_error(other_nonce, 401)
    assert other_nonce.json()["error"]["code"] == "bad_id_token"
    assert COOKIE not in http.cookies
    # the genuine callback of the flow still works once
    assert callback(http, location, flow).status_code == 303
