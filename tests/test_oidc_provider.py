"""The loopback OpenID provider used by sign-in tests is real and complete (no browser)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oidc_provider import Provider, oidc_provider  # noqa: F401

REDIRECT_URI = "http://127.0.0.1:8765/auth/callback"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize(
    client: httpx.Client, config: dict, provider: Provider, challenge: str, nonce: str
) -> dict[str, list[str]]:
    """Run /authorize (signing in when asked) until it redirects to REDIRECT_URI; its query."""
    state = secrets.token_urlsafe(16)
    response = client.get(
        config["authorization_endpoint"],
        params={
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid profile email",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    for _ in range(5):
        assert response.status_code == 302, response.text
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(REDIRECT_URI):
            break
        response = client.get(location)
        if response.status_code == 200 and 'name="password"' in response.text:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)
            next_url = re.search(r'name="next" value="([^"]*)"', response.text)
            assert token and next_url
            response = client.post(
                str(response.url),
                data={
                    "csrfmiddlewaretoken": token.group(1),
                    "username": "ada",
                    "password": "correct horse",
                    "next": next_url.group(1).replace("&amp;", "&"),
                },
            )
    else:
        pytest.fail("never redirected back to the client")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    assert query["iss"] == [provider.issuer]
    return query


def _redeem(client: httpx.Client, config: dict, provider: Provider, code: str, verifier: str):
    return client.post(
        config["token_endpoint"],
        auth=(provider.client_id, provider.client_secret),  # client_secret_basic
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )


def test_code_flow_with_pkce(oidc_provider: Provider) -> None:  # noqa: F811
    provider = oidc_provider
    provider.allow_redirect(REDIRECT_URI)
    provider.add_user(
        "ada", "correct horse", ["helpdesk-admins", "staff"], "ada@example.com", "Ada Lovelace"
    )
    with httpx.Client(timeout=10) as client:
        config = client.get(provider.discovery_url).raise_for_status().json()
        assert config["issuer"] == provider.issuer
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            assert config[key].startswith(provider.issuer + "/")
        assert "S256" in config["code_challenge_methods_supported"]
        assert "client_secret_basic" in config["token_endpoint_auth_methods_supported"]
        assert "RS256" in config["id_token_signing_alg_values_supported"]
        assert "groups" in config["claims_supported"]

        verifier, challenge = _pkce()
        nonce = secrets.token_urlsafe(16)
        code = _authorize(client, config, provider, challenge, nonce)["code"][0]
        tokens = _redeem(client, config, provider, code, verifier).raise_for_status().json()

        keys = KeySet.import_key_set(client.get(config["jwks_uri"]).raise_for_status().json())
        id_token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": provider.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
            sub={"essential": True},
        ).validate(id_token.claims)
        claims = id_token.claims
        assert claims["groups"] == ["helpdesk-admins", "staff"]
        assert claims["preferred_username"] == "ada"
        assert claims["email"] == "ada@example.com"
        assert claims["name"] == "Ada Lovelace"

        userinfo = client.get(
            config["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert userinfo.raise_for_status().json()["groups"] == ["helpdesk-admins", "staff"]

        # A second code (the session is signed in now) with the wrong verifier is refused.
        _, challenge = _pkce()
        code = _authorize(client, config, provider, challenge, nonce)["code"][0]
        refused = _redeem(client, config, provider, code, _pkce()[0])
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"

        # An unregistered redirect_uri is refused at /authorize, without redirecting to it.
        response = client.get(
            config["authorization_endpoint"],
            params={
                "response_type": "code",
                "client_id": provider.client_id,
                "redirect_uri": "http://127.0.0.1:8765/elsewhere",
                "scope": "openid",
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert response.status_code == 400
        assert "location" not in response.headers
