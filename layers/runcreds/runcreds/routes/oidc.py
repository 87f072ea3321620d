"""The OIDC issuer's public routes (docs/interface.md §4, §7): discovery document and JWKS, for AWS STS.

A router of its own because it runs in its own function (OidcIssuerFunction) behind routes without
IAM auth (`Authorizer: NONE`), with a role that may only read the signing keys' public halves.
"""

from __future__ import annotations

import os
from typing import Any

from runcreds.logic import oidc
from runcreds.models.bodies import DiscoveryDocument, JsonWebKeySet
from runcreds.routes import shared as http
from runcreds.routes.router import APPLICATION_JSON, Response, Router
from runcreds.settings import OidcIssuerSettings

app = Router()
http.map_errors(app)  # the keys unavailable (SigningKeysUnavailableError) is a 503, as every transient failure


def _public(body: Any, max_age: int) -> Response[Any]:
    return Response(
        status_code=200,
        content_type=APPLICATION_JSON,
        body=body,
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )


@app.get(
    oidc.DISCOVERY_PATH,
    summary="The OIDC discovery document (public, no auth): what AWS STS reads to find the JWKS",
    responses=http.responses(200, DiscoveryDocument, "the discovery document", 503),
)
def openid_configuration() -> Response[DiscoveryDocument]:
    settings = OidcIssuerSettings.from_env()
    issuer = oidc.issuer_url(settings.issuer_url, app.event.get("requestContext"), _region())
    return _public(DiscoveryDocument.model_validate(oidc.discovery_document(issuer)), oidc.DISCOVERY_MAX_AGE)


@app.get(
    oidc.JWKS_PATH,
    summary="The issuer's public keys (public, no auth): every key that may have signed a live token",
    responses=http.responses(200, JsonWebKeySet, "the JSON Web Key Set", 503),
)
def jwks() -> Response[JsonWebKeySet]:
    settings = OidcIssuerSettings.from_env()
    return _public(JsonWebKeySet.model_validate(oidc.jwks(settings.published_keys)), oidc.JWKS_MAX_AGE)


def _region() -> str:
    return os.environ.get("AWS_REGION", "us-east-1")
