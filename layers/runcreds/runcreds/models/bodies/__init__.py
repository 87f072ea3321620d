"""Request and response bodies of the HTTP API (docs/interface.md §4); the OpenAPI document is built from them.
One module per route family: attach (integrations, attachments, trust policies), refresh, audit, oidc, and
errors (the answers every router shares).

Each name is imported from its module on first use (PEP 562), so that a function imports the bodies of
its own routes only: the audit API and the OIDC issuer build none of the attach routes' models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runcreds.models.bodies.attach import (
        AttachmentList,
        AttachmentOut,
        AttachRequest,
        IntegrationCreate,
        IntegrationList,
        IntegrationOut,
        IntegrationUpdate,
    )
    from runcreds.models.bodies.audit import AuditEventOut, AuditPage
    from runcreds.models.bodies.errors import DiagnosisBody, ErrorBody, ErrorDetail
    from runcreds.models.bodies.oidc import DiscoveryDocument, JsonWebKey, JsonWebKeySet
    from runcreds.models.bodies.policy import PolicyStatement, TrustPolicyDocument
    from runcreds.models.bodies.refresh import RefreshedCredentials, RefreshRequest, RefreshResponse, WebIdentityToken

_MODULE_OF = {
    "AttachRequest": "attach",
    "AttachmentList": "attach",
    "AttachmentOut": "attach",
    "AuditEventOut": "audit",
    "AuditPage": "audit",
    "DiagnosisBody": "errors",
    "DiscoveryDocument": "oidc",
    "ErrorBody": "errors",
    "ErrorDetail": "errors",
    "IntegrationCreate": "attach",
    "IntegrationList": "attach",
    "IntegrationOut": "attach",
    "IntegrationUpdate": "attach",
    "JsonWebKey": "oidc",
    "JsonWebKeySet": "oidc",
    "PolicyStatement": "policy",
    "RefreshRequest": "refresh",
    "RefreshResponse": "refresh",
    "RefreshedCredentials": "refresh",
    "TrustPolicyDocument": "policy",
    "WebIdentityToken": "refresh",
}

__all__ = [
    "AttachRequest",
    "AttachmentList",
    "AttachmentOut",
    "AuditEventOut",
    "AuditPage",
    "DiagnosisBody",
    "DiscoveryDocument",
    "ErrorBody",
    "ErrorDetail",
    "IntegrationCreate",
    "IntegrationList",
    "IntegrationOut",
    "IntegrationUpdate",
    "JsonWebKey",
    "JsonWebKeySet",
    "PolicyStatement",
    "RefreshRequest",
    "RefreshResponse",
    "RefreshedCredentials",
    "TrustPolicyDocument",
    "WebIdentityToken",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
