"""The relying party's side of OpenID Connect: discovery, the authorization request, the code exchange
and the ID token's checks.  No web framework here; service/console/oidc.py holds the two routes.

Authorization code flow with PKCE (S256), ``state`` and ``nonce`` (authlib
builds the request); the code is exchanged with the client
secret (HTTP Basic); the ID token's signature is checked against the
provider's JWKS and its claims (``iss``, ``aud``, ``azp``, ``exp``, ``iat``,
``nonce``) with joserfc, the JOSE library authlib now points to.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import httpx
import msgspec
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

SCOPE = "openid email"
_TIMEOUT = httpx.Timeout(10.0)


class OidcFailed(Exception):
    """The provider could not be used, or what it answered does not prove who the user is."""


class Flow(msgspec.Struct, frozen=True):
    """What one sign-in keeps between leaving for the provider and coming back (in a signed cookie)."""

    state: str
    nonce: str
    verifier: str
    next: str


class Provider(msgspec.Struct, frozen=True):
    """The endpoints a provider's discovery document names."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None


def new_flow(next_path: str) -> Flow:
    """Fresh random ``state``, ``nonce`` and PKCE verifier for one sign-in."""
    return Flow(state=generate_token(32), nonce=generate_token(32), verifier=generate_token(64), next=next_path)


async def _get_json(client: httpx.AsyncClient, url: str) -> Any:
    try:
        response = await client.get(url)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcFailed(f"could not read {url}: {exc}") from exc


async def discover(client: httpx.AsyncClient, issuer: str) -> Provider:
    """Read the issuer's discovery document; its ``issuer`` must be exactly the one configured."""
    document = await _get_json(client, issuer.rstrip("/") + "/.well-known/openid-configuration")
    try:
        provider = msgspec.convert(document, Provider)
    except msgspec.ValidationError as exc:
        raise OidcFailed(f"the discovery document is incomplete: {exc}") from exc
    if provider.issuer != issuer:
        raise OidcFailed(f"the discovery document names issuer {provider.issuer!r}, not {issuer!r}")
    return provider


def s256_challenge(verifier: str) -> str:
    """PKCE's S256 code challenge (RFC 7636 section 4.2): base64url of the verifier's SHA-256, unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def authorization_url(provider: Provider, client_id: str, redirect_uri: str, flow: Flow) -> str:
    """Where to send the browser: the provider's authorization endpoint with this flow's parameters."""
    url: str = prepare_grant_uri(
        provider.authorization_endpoint, client_id, "code", redirect_uri=redirect_uri, scope=SCOPE,
        state=flow.state, nonce=flow.nonce, code_challenge=s256_challenge(flow.verifier),
        code_challenge_method="S256",
    )
    return url


async def exchange(client: httpx.AsyncClient, provider: Provider, client_id: str, client_secret: str,
                   redirect_uri: str, code: str, flow: Flow) -> dict[str, Any]:
    """Trade the code for tokens and return the verified ID token's claims."""
    try:
        response = await client.post(
            provider.token_endpoint, auth=(client_id, client_secret),
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                  "code_verifier": flow.verifier},
        )
        tokens = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcFailed(f"the token endpoint could not be used: {exc}") from exc
    if response.status_code != 200 or not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
        raise OidcFailed(f"the token endpoint refused the code ({response.status_code}): {str(tokens)[:200]}")
    keys = await _get_json(client, provider.jwks_uri)
    claims = verify_id_token(tokens["id_token"], keys, provider.issuer, client_id, flow.nonce)
    if "email" not in claims and provider.userinfo_endpoint and isinstance(tokens.get("access_token"), str):
        # Providers that follow the spec closely put scope claims in UserInfo only (OIDC Core 5.4).
        claims.update(await _userinfo(client, provider.userinfo_endpoint, tokens["access_token"], claims["sub"]))
    return claims


async def _userinfo(client: httpx.AsyncClient, endpoint: str, access_token: str, subject: str) -> dict[str, Any]:
    """The email claims from UserInfo, which must be about the ID token's subject (OIDC Core 5.3.2)."""
    try:
        response = await client.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
        response.raise_for_status()
        info = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcFailed(f"the UserInfo endpoint could not be used: {exc}") from exc
    if not isinstance(info, dict) or info.get("sub") != subject:
        raise OidcFailed("the UserInfo answer is about someone other than the ID token's subject")
    return {name: info[name] for name in ("email", "email_verified") if name in info}


def verify_id_token(id_token: str, jwks: Any, issuer: str, client_id: str, nonce: str,
                    *, now: float | None = None) -> dict[str, Any]:
    """The ID token's claims once its signature (RS256/ES256 by the provider's keys) and claims check out."""
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256", "PS256", "ES256"])
        claims: dict[str, Any] = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            now=int(now if now is not None else time.time()), leeway=60,
            iss={"essential": True, "value": issuer}, aud={"essential": True, "value": client_id},
            exp={"essential": True}, iat={"essential": True}, sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        registry.validate(claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise OidcFailed(f"the ID token does not check out: {exc}") from exc
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise OidcFailed("the ID token is for several audiences and not authorised for this client")
    return claims


def verified_email(claims: dict[str, Any]) -> str | None:
    """The email the provider vouches for (not one it says is unverified), lower-cased."""
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is False:
        return None
    return email.strip().lower()
