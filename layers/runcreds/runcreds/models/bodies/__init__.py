"""Request and response bodies of the HTTP API (docs/interface.md §4); the OpenAPI document is built from them.
One module per route family: attach (integrations, attachments, trust policies), refresh, audit, oidc, and
errors (the answers every resolver shares)."""

from runcreds.models.bodies.attach import (
    AttachmentList,
    AttachmentOut,
    AttachRequest,
    IntegrationCreate,
    IntegrationList,
    IntegrationOut,
    IntegrationUpdate,
    PolicyStatement,
    TrustPolicyDocument,
)
from runcreds.models.bodies.audit import AuditEventOut, AuditPage
from runcreds.models.bodies.errors import DiagnosisBody, ErrorBody, ErrorDetail
from runcreds.models.bodies.oidc import DiscoveryDocument, JsonWebKey, JsonWebKeySet
from runcreds.models.bodies.refresh import RefreshedCredentials, RefreshRequest, RefreshResponse, WebIdentityToken

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
