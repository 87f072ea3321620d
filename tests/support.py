"""Helpers the tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

import copy
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.sts.models import sts_backends

from runcreds.dal.items import to_item
from runcreds.dal.keys import PHASE_ITEM, integration_key, stack_key
from runcreds.models.entities import Attachment
from runcreds.models.run import Phase, RunPhase
from runcreds_cli.sigv4_client import ApiClient, ApiResponse
from runcreds_cli.worker import CredentialsFetcher
from runcreds_dev.stack import EmbeddedStack

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z: the date SAM's zip gives every file of a function or a layer


def date_as_sam_zips(root: Path) -> None:
    """Every file and folder under `root` dated as Lambda finds them after `sam deploy` (ZIP_EPOCH)."""
    for path in root.rglob("*"):
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH))


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@dataclass(frozen=True)
class Tenant:
    account: str
    stack: str
    run_id: str

    def detail(self, phase: str, **overrides: Any) -> dict[str, Any]:
        return {
            "account": self.account,
            "stack": self.stack,
            "run_id": self.run_id,
            "phase": phase,
            **overrides,
        }

    def event(self, phase: str, detail_type: str = "Run Phase Started", **overrides: Any) -> dict[str, Any]:
        """The events/ fixture, re-addressed to this tenant (the shape stays the fixture's)."""
        event = copy.deepcopy(load_event("run_phase_started_plan.json"))
        event["detail-type"] = detail_type
        event["detail"].update(self.detail(phase, **overrides))
        return event


def trust_policy(
    principal: str,
    external_id: str | None,
    actions: tuple[str, ...] = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"),
    operator: str = "StringLike",
) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": list(actions)}
    if external_id is not None:
        statement["Condition"] = {operator: {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def assumptions_of(role_arn: str) -> int:
    """How many sessions moto's STS issued for this role (every AssumeRole the stand-in let through)."""
    return sum(
        1 for account in list(sts_backends.values()) for r in account["global"].assumed_roles if r.role_arn == role_arn
    )


def events_for(stack: EmbeddedStack, tenant: Tenant, detail_type: str) -> list[dict[str, Any]]:
    return [
        e["detail"]
        for e in stack.router.events(detail_type)
        if e["detail"].get("account") == tenant.account and e["detail"].get("stack") == tenant.stack
    ]


def record_items(stack: EmbeddedStack, tenant: Tenant, phase: str) -> list[dict[str, Any]]:
    """The phase's integration records, as stored (without the phase's own state item)."""
    return [i for i in partition_items(stack, tenant, phase) if i["integration_id"]["S"] != PHASE_ITEM]


def partition_items(stack: EmbeddedStack, tenant: Tenant, phase: str) -> list[dict[str, Any]]:
    """Every item of the phase's partition: its records and its state item."""
    return list(
        stack.client("dynamodb").query(
            TableName=stack.outputs["CredentialsTableName"],
            KeyConditionExpression="run_key = :k",
            ExpressionAttributeValues={":k": {"S": f"{tenant.account}#{tenant.stack}#{tenant.run_id}#{phase}"}},
            ConsistentRead=True,
        )["Items"]
    )


def create_integration(api: ApiClient, tenant: Tenant, role_arn: str, **fields: Any) -> str:
    created = api.post(f"/accounts/{tenant.account}/integrations", {"name": "prod", "role_arn": role_arn, **fields})
    assert created.status == 201, created.body
    return str(created.body["id"])


def attach(
    api: ApiClient, tenant: Tenant, integration_id: str, stack: str | None = None, **access: bool
) -> ApiResponse:
    body = {"read": access.get("read", True), "write": access.get("write", True)}
    return api.put(f"/accounts/{tenant.account}/stacks/{stack or tenant.stack}/integrations/{integration_id}", body)


def credentials_of(stack: EmbeddedStack, tenant: Tenant, phase: str) -> dict[str, str]:
    """The phase's credentials as the worker gets them (credential_process JSON)."""
    run = RunPhase(account=tenant.account, stack=tenant.stack, run_id=tenant.run_id, phase=Phase(phase))
    creds = CredentialsFetcher(stack.outputs["CredentialsTableName"]).fetch(run)
    return creds.credential_process()  # type: ignore[return-value]


def create_role(
    stack: EmbeddedStack, document: dict[str, Any], name: str | None = None, max_session_duration: int = 3600
) -> str:
    """A customer role with this trust policy (a unique name unless given); returns its ARN."""
    return str(
        stack.customer_client("iam").create_role(
            RoleName=name or f"customer-{uuid.uuid4().hex[:12]}",
            AssumeRolePolicyDocument=json.dumps(document),
            MaxSessionDuration=max_session_duration,
        )["Role"]["Arn"]
    )


def apply_trust_policy(stack: EmbeddedStack, role_arn: str, document: dict[str, Any]) -> None:
    stack.customer_client("iam").update_assume_role_policy(
        RoleName=role_arn.rsplit("/", 1)[1], PolicyDocument=json.dumps(document)
    )


def put_attachment(stack: EmbeddedStack, attachment: Attachment) -> None:
    """An attachment item written straight into the table, as versions before the integrations recorded
    their stacks wrote it (no transaction, no integration needed): data a deployment may still hold."""
    values = attachment.model_dump(mode="json")
    values["stack_key"] = stack_key(attachment.account, attachment.stack)
    values["integration_key"] = integration_key(attachment.account, attachment.integration_id)
    stack.client("dynamodb").put_item(TableName=stack.template.ref("AttachmentsTable"), Item=to_item(values))
