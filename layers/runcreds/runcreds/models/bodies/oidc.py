"""The OIDC issuer's documents: discovery and the signing keys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class JsonWebKey(BaseModel):
    """An RSA public key of the issuer (RFC 7517)."""

    kty: Literal["RSA"]
    use: Literal["sig"]
    alg: Literal["RS256"]
    kid: str
    n: str = Field(description="modulus, base64url")
    e: str = Field(description="public exponent, base64url")


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey] = Field(description="every key that may have signed a live token, the signing one first")


class DiscoveryDocument(BaseModel):
    """The OpenID Connect discovery document (OpenID Connect Discovery 1.0), what AWS STS reads."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    claims_supported: list[str]
    scopes_supported: list[str]
