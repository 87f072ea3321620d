"""The vend's lifecycle decisions run in this process (the `vend_here` fixture), against the embedded AWS:
what each claim outcome gives, what is recorded and announced, and what a phase's Finished stops. The
same paths run through the template's function in test_vend.py and test_vend_faults.py; here the
handler's own result is seen too, and mutation testing (docs/reliability.md) sees the code run."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runcreds import aws
from runcreds.dal.audit_sessions import AuditSessionsStore
from runcreds.dal.items import from_item
from runcreds.dal.keys import access_key_key, source_identity_key
from runcreds.exceptions import TransientAwsError
from runcreds.models.audit import SessionMapping
from runcreds.models.entities import CredentialRecord
from runcreds_cli.sigv4_client import ApiClient
from runcreds_dev.faults import put_events_partial_failure
from runcreds_dev.stack import EmbeddedStack
from tests.oidc_support import create_oidc_role, ensure_provider
from tests.support import (
    Tenant,
    apply_trust_policy,
    assumptions_of,
    attach,
    create_integration,
    credentials_of,
    events_for,
    load_event,
    record_items,
    trust_policy,
)

Vend = Callable[[dict[str, Any]], Any]
READY = "Run Phase Credentials Ready"
FAILED = "Run Phase Credentials Failed"
FINISHED = "Run Phase Finished"
DAY = 86400  # how long a worker-mode or failed record is kept
ATTEMPTS = 4  # botocore's attempts of one request (runcreds.aws)


@pytest.fixture
def vend_fault(stack: EmbeddedStack) -> Iterator[Callable[..., None]]:
    """Faults in what the vend function's role calls, for the rest of the test."""
    key = stack.functions["VendCredentialsFunction"].environment["AWS_ACCESS_KEY_ID"]
    injected: list[Any] = []

    def inject(service: str, action: str, code: str | None = None, **options: Any) -> None:
        fault = stack.aws.faults.inject(service, action, code, when=lambda r: r.access_key == key, **options)
        fault.__enter__()
        injected.append(fault)

    yield inject
    for fault in reversed(injected):
        fault.__exit__(None, None, None)


def session_mappings(stack: EmbeddedStack, session_key: str) -> list[SessionMapping]:
    """The audit index's mappings under one key, as the vend function wrote them (docs/audit.md)."""
    table = stack.functions["VendCredentialsFunction"].environment["RUNCREDS_AUDIT_SESSIONS_TABLE"]
    return AuditSessionsStore(table, stack.client("dynamodb")).mappings(session_key)


def refuse(stack: EmbeddedStack, role: str) -> None:
    """The attached role's trust changed to another account's external ID: AssumeRole refused, for good."""
    stack.customer_client("iam").update_assume_role_policy(
        RoleName=role.rsplit("/", 1)[1],
        PolicyDocument=json.dumps(trust_policy(stack.outputs["BrokerRoleArn"], "someone-else@*")),
    )


def test_a_broker_mode_vend_records_and_announces_its_credentials(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    assert vend_here(tenant.event("plan")) == {"ready": [integration_id]}
    (item,) = record_items(stack, tenant, "plan")
    assert (item["status"]["S"], item["mode"]["S"]) == ("ready", "broker")
    assert "unannounced" not in item
    (ready,) = events_for(stack, tenant, READY)
    assert ready == {
        **tenant.detail("plan"),
        "integration_id": integration_id,
        "mode": "broker",
        "expires_at": ready["expires_at"],
    }
    assert ready["expires_at"] and ready["expires_at"][:19] == item["expires_at"]["S"][:19]
    assert not events_for(stack, tenant, FAILED)
    # The record holds what the worker decrypts and the refresh route re-assumes, kept until it expires
    assert credentials_of(stack, tenant, "plan")["AccessKeyId"] == item["access_key_id"]["S"]
    record = CredentialRecord.model_validate(from_item(item))
    assert record.assume_role is not None
    assert record.assume_role.role_arn == role
    assert record.expires_at is not None
    assert int(item["ttl"]["N"]) == int(record.expires_at.timestamp())
    # And the audit index knows the session by its access key, as this run's
    (mapping,) = session_mappings(stack, access_key_key(item["access_key_id"]["S"]))
    assert (mapping.run_id, mapping.integration_id, mapping.mode) == (tenant.run_id, integration_id, "broker")


@pytest.mark.parametrize("on_worker", [False, True], ids=["broker", "worker"])
def test_an_oidc_trust_vend_opens_its_session_with_a_token_or_leaves_the_exchange_to_the_worker(
    stack: EmbeddedStack, api: ApiClient, tenant: Tenant, vend_here: Vend, on_worker: bool
) -> None:
    # Given an OIDC integration whose role trusts the stack's issuer only (the trust-policy route's policy)
    ensure_provider(stack)
    role = create_oidc_role(stack, {"Version": "2012-10-17", "Statement": []})
    integration_id = create_integration(api, tenant, role, trust="oidc", assume_role_on_worker=on_worker)
    policy = api.get(f"/accounts/{tenant.account}/integrations/{integration_id}/trust-policy", stack=tenant.stack)
    apply_trust_policy(stack, role, dict(policy.body))
    assert attach(api, tenant, integration_id).status == 200
    exchanged = len(stack.aws.strict_sts.web_identity_tokens)
    assert vend_here(tenant.event("plan")) == {"ready": [integration_id]}
    (item,) = record_items(stack, tenant, "plan")
    assert item["trust"]["S"] == "oidc"  # what the worker (worker mode) and the refresh route go by
    if on_worker:
        # Then the instruction tells the worker to ask for a token; the vend exchanged none
        assert (item["status"]["S"], item["mode"]["S"]) == ("worker", "worker")
        assert stack.aws.strict_sts.exchanges(exchanged) == []
    else:
        # Then the vend opened the session with a web identity token, not the broker role's AssumeRole
        assert (item["status"]["S"], item["mode"]["S"]) == ("ready", "broker")
        assert len(stack.aws.strict_sts.exchanges(exchanged)) == 1  # one exchange (an SDK retry is not two)
        assert credentials_of(stack, tenant, "plan")["AccessKeyId"] == item["access_key_id"]["S"]


def test_a_worker_mode_vend_records_the_instruction_and_announces_no_expiry(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role, assume_role_on_worker=True, region="eu-west-1")
    assert vend_here(tenant.event("apply")) == {"ready": [integration_id]}
    (item,) = record_items(stack, tenant, "apply")
    assert (item["status"]["S"], item["mode"]["S"]) == ("worker", "worker")
    assert "ciphertext" not in item
    assert "unannounced" not in item
    (ready,) = events_for(stack, tenant, READY)
    assert (ready["integration_id"], ready["mode"], ready.get("expires_at")) == (integration_id, "worker", None)
    assert abs(int(item["ttl"]["N"]) - (time.time() + DAY)) < 60
    # And the audit index knows the session the worker will open by its source identity
    # The worker's instruction: the attachment's role, in the attachment's region
    spec = CredentialRecord.model_validate(from_item(item)).assume_role
    assert spec is not None
    assert (spec.role_arn, spec.region) == (role, "eu-west-1")
    (mapping,) = session_mappings(stack, source_identity_key(spec.source_identity))
    assert (mapping.run_id, mapping.integration_id, mapping.mode) == (tenant.run_id, integration_id, "worker")


def test_a_role_refusing_is_recorded_failed_and_announced_with_its_code(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    refuse(stack, role)
    assert vend_here(tenant.event("plan")) == {"failed": [integration_id]}
    (item,) = record_items(stack, tenant, "plan")
    assert (item["status"]["S"], item["failure_code"]["S"]) == ("failed", "AccessDenied")
    assert item["failure_reason"]["S"]
    assert abs(int(item["ttl"]["N"]) - (time.time() + DAY)) < 60
    assert "unannounced" not in item
    (failed,) = events_for(stack, tenant, FAILED)
    assert failed == {
        **tenant.detail("plan"),
        "integration_id": integration_id,
        "code": "AccessDenied",
        "reason": item["failure_reason"]["S"],
    }
    assert not events_for(stack, tenant, READY)


def test_a_second_delivery_of_an_announced_phase_is_a_duplicate_and_assumes_nothing(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    vend_here(tenant.event("plan"))
    assumed = assumptions_of(role)
    assert vend_here(tenant.event("plan")) == {"duplicates": [integration_id]}
    assert assumptions_of(role) == assumed
    assert len(events_for(stack, tenant, READY)) == 1


@pytest.mark.parametrize("kind", ["broker", "worker", "failed"])
def test_what_could_not_be_announced_is_announced_by_the_next_delivery(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    vend_here: Vend,
    vend_fault: Callable[..., None],
    kind: str,
) -> None:
    # Given a vend whose every PutEvents try failed: the record is written, left unannounced, and it raises
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role, assume_role_on_worker=kind == "worker")
    if kind == "failed":
        refuse(stack, role)
    vend_fault("events", "PutEvents", answer=put_events_partial_failure, times=3)
    with pytest.raises(TransientAwsError, match=integration_id):
        vend_here(tenant.event("plan"))
    (item,) = record_items(stack, tenant, "plan")
    assert "unannounced" in item
    assert not events_for(stack, tenant, READY) + events_for(stack, tenant, FAILED)
    assumed = assumptions_of(role)

    # When the next delivery comes (the announcement's lease was released: no wait)
    assert vend_here(tenant.event("plan")) == {"reannounced": [integration_id]}

    # Then it announced the record as written, once, without assuming the role again
    assert assumptions_of(role) == assumed
    (item,) = record_items(stack, tenant, "plan")
    assert "unannounced" not in item
    if kind == "failed":
        (failed,) = events_for(stack, tenant, FAILED)
        assert (failed["integration_id"], failed["code"]) == (integration_id, "AccessDenied")
        assert failed["reason"] == item["failure_reason"]["S"]
        assert not events_for(stack, tenant, READY)
    else:
        (ready,) = events_for(stack, tenant, READY)
        assert (ready["integration_id"], ready["mode"]) == (integration_id, kind)
        expires_at = item["expires_at"]["S"][:19] if kind == "broker" else None
        assert (ready["expires_at"] or "")[:19] == (expires_at or "")
        assert ready == {
            **tenant.detail("plan"),
            "integration_id": integration_id,
            "mode": kind,
            "expires_at": ready["expires_at"],
        }
        assert not events_for(stack, tenant, FAILED)


@pytest.mark.parametrize("failing", [0, 1], ids=["first-fails", "second-fails"])
def test_a_transient_fault_releases_its_claim_and_holds_back_no_other_integration(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    vend_here: Vend,
    vend_fault: Callable[..., None],
    failing: int,
) -> None:
    # Given two integrations, one of whose Encrypt fails on every attempt of botocore's
    ids = [integrate(tenant, make_role(f"{tenant.account}@*")) for _ in range(2)]
    failed, vended = ids[failing], ids[1 - failing]
    vend_fault("kms", "Encrypt", "KMSInternalException", status=500, times=ATTEMPTS, after=failing)
    with pytest.raises(TransientAwsError, match=failed):
        vend_here(tenant.event("plan"))
    # Then the same invocation vended and announced the other, before or after it; the failed one's claim
    # was given back (no record), so Lambda's retry vends it at once
    assert [e["integration_id"] for e in events_for(stack, tenant, READY)] == [vended]
    assert [i["integration_id"]["S"] for i in record_items(stack, tenant, "plan")] == [vended]
    assert vend_here(tenant.event("plan")) == {"ready": [failed], "duplicates": [vended]}


def test_a_phase_gets_only_the_integrations_attached_for_its_access(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    reader = integrate(tenant, make_role(f"{tenant.account}@*"), write=False)
    writer = integrate(tenant, make_role(f"{tenant.account}@*"), read=False)
    assert vend_here(tenant.event("plan")) == {"ready": [reader]}
    assert vend_here(tenant.event("apply")) == {"ready": [writer]}


def test_a_finished_phase_vends_nothing_for_any_of_its_integrations(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    role = make_role(f"{tenant.account}@*")
    ids = [integrate(tenant, role), integrate(tenant, role)]
    assert vend_here(tenant.event("plan", FINISHED)) == {"finished": 0}
    assumed = assumptions_of(role)
    result = vend_here(tenant.event("plan"))
    assert result.keys() == {"phase_finished"}
    assert sorted(result["phase_finished"]) == sorted(ids)
    assert assumptions_of(role) == assumed
    assert record_items(stack, tenant, "plan") == []
    assert not events_for(stack, tenant, READY)


def test_the_finished_event_erases_what_was_vended(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], vend_here: Vend
) -> None:
    integrate(tenant, make_role(f"{tenant.account}@*"))
    integrate(tenant, make_role(f"{tenant.account}@*"), assume_role_on_worker=True)
    vend_here(tenant.event("plan"))
    assert vend_here(tenant.event("plan", FINISHED)) == {"finished": 2}
    items = record_items(stack, tenant, "plan")
    assert [i["status"]["S"] for i in items] == ["finished", "finished"]
    assert not [i for i in items if "ciphertext" in i]


def test_a_phase_finished_while_its_credentials_were_sealed_stores_and_announces_nothing(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    vend_here: Vend,
    publish: Callable[..., None],
) -> None:
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))

    def finish(**_kwargs: Any) -> None:
        publish(tenant, "plan", FINISHED)

    aws.kms().meta.events.register("before-call.kms.Encrypt", finish)
    assert vend_here(tenant.event("plan")) == {"phase_finished": [integration_id]}
    (item,) = record_items(stack, tenant, "plan")  # the claim, closed by the Finished: nothing stored
    assert item["status"]["S"] == "finished"
    assert "ciphertext" not in item
    assert not events_for(stack, tenant, READY)


def test_an_invalid_event_is_dropped_with_its_reason_and_vends_nothing(vend_here: Vend) -> None:
    event = load_event("invalid/at_in_stack.json")
    result = vend_here(event)
    assert result.keys() == {"dropped"}
    assert re.fullmatch(r"invalid run-phase event: .*detail\.stack.*", result["dropped"], re.S)
