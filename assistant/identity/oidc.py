"""Sign-in through the company's OpenID provider (``ASSISTANT_AUTH=oidc``).

Authorization code flow with PKCE (S256), through Authlib's OAuth 2 client; the ID token is
checked with joserfc against the provider's published keys: signature, issuer, audience,
expiry and the nonce of this very sign-in. ``state``, ``nonce`` and the PKCE verifier live in
a signed, HttpOnly cookie for the ten minutes a sign-in may take, so a callback with a
state or nonce that this browser did not start is refused. The user's groups come from a
configurable claim (``oidc_groups_claim``) and are taken as the provider says at every
sign-in; the local user record only anchors sessions to them.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

from assistant.errors import APIError
from assistant.identity.signing import Signer

FLOW_COOKIE = "hd_oidc"
FLOW_SECONDS = 600


@dataclass
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str = "openid profile email"
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    timeout_s: float = 10.0


@dataclass
class Identity:
    username: str
    groups: list[str]
    claims: dict


class OidcClient:
    def __init__(self, config: OidcConfig, secret: bytes) -> None:
        self.config = config
        self.flows = Signer(secret, "oidc-flow")
        self._metadata: dict | None = None
        self._keys = None
        self._keys_at = 0.0

    # --- provider metadata ---------------------------------------------------------------
    async def metadata(self) -> dict:
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            self._metadata = await self._get_json(url)
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if field not in self._metadata:
                    raise APIError(502, f"the OpenID provider's discovery document has no {field}")
        return self._metadata

    async def _get_json(self, url: str) -> dict:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.config.timeout_s) as http:
                resp = await http.get(url)
                resp.raise_for_status()
                return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise APIError(
                502, f"the OpenID provider at {url} cannot be reached ({exc})", code="oidc_down"
            ) from None

    async def _key_set(self, refresh: bool = False):
        from joserfc.jwk import KeySet

        if self._keys is None or refresh:
            if refresh and time.monotonic() - self._keys_at < 30:
                return self._keys  # a token with an unknown key does not hammer the provider
            meta = await self.metadata()
            self._keys = KeySet.import_key_set(await self._get_json(meta["jwks_uri"]))
            self._keys_at = time.monotonic()
        return self._keys

    # --- the flow --------------------------------------------------------------------------
    async def start(self, redirect_uri: str, next_url: str) -> tuple[str, str]:
        """(URL to send the browser to, value of the flow cookie)."""
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        meta = await self.metadata()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        client = AsyncOAuth2Client(
            self.config.client_id,
            scope=self.config.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )
        url, _ = client.create_authorization_url(
            meta["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
        )
        flow = json.dumps(
            {"state": state, "nonce": nonce, "verifier": verifier, "next": next_url,
             "redirect_uri": redirect_uri, "until": time.time() + FLOW_SECONDS}
        )  # fmt: skip
        packed = base64.urlsafe_b64encode(flow.encode()).decode().rstrip("=")
        return url, f"{packed}.{self.flows.sign(packed)}"

    def flow(self, cookie: str | None) -> dict:
        """The sign-in this browser started, or a 400 (missing, forged or expired)."""
        packed, _, signature = (cookie or "").rpartition(".")
        if not packed or not self.flows.verify(packed, signature):
            raise APIError(400, "this sign-in was not started here; start again", code="bad_flow")
        data = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
        if data["until"] < time.time():
            raise APIError(400, "this sign-in took too long; start again", code="bad_flow")
        return data

    async def finish(self, flow: dict, state: str | None, code: str | None) -> Identity:
        """Check the callback against the flow, redeem the code, check the ID token."""
        from authlib.integrations.base_client.errors import OAuthError
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        if not state or not secrets.compare_digest(state, flow["state"]):
            raise APIError(400, "the sign-in's state does not match; start again", code="bad_state")
        if not code:
            raise APIError(400, "the provider sent no code", code="bad_callback")
        meta = await self.metadata()
        client = AsyncOAuth2Client(
            self.config.client_id,
            self.config.client_secret,
            redirect_uri=flow["redirect_uri"],
            timeout=self.config.timeout_s,
        )
        try:
            token = await client.fetch_token(
                meta["token_endpoint"], code=code, code_verifier=flow["verifier"]
            )
        except (OAuthError, ValueError) as exc:
            raise APIError(
                401, f"the provider refused the sign-in ({exc})", code="oidc_refused"
            ) from None
        finally:
            await client.aclose()
        if "id_token" not in token:
            raise APIError(401, "the provider sent no ID token", code="oidc_refused")
        claims = await self._verify(token["id_token"], flow["nonce"])
        username = claims.get(self.config.username_claim) or claims.get("sub")
        groups = claims.get(self.config.groups_claim) or []
        if isinstance(groups, str):
            groups = [g for g in groups.replace(",", " ").split() if g]
        return Identity(str(username), [str(g) for g in groups], claims)

    async def _verify(self, id_token: str, nonce: str) -> dict:
        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            try:
                decoded = jwt.decode(id_token, await self._key_set())
            except (JoseError, ValueError):
                decoded = jwt.decode(id_token, await self._key_set(refresh=True))
            jwt.JWTClaimsRegistry(
                leeway=60,
                iss={"essential": True, "value": self.config.issuer},
                aud={"essential": True, "value": self.config.client_id},
                nonce={"essential": True, "value": nonce},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise APIError(
                401, f"the provider's ID token is not valid ({exc})", code="bad_id_token"
            ) from None
        return dict(decoded.claims)
