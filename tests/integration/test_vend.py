"""Run-phase events → phase-scoped, encrypted credentials, through the template's functions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from runcreds.dal.attachments import AttachmentsStore
from runcreds.models.run import Phase, RunPhase
from runcreds.run_scope import RunScope
from runcreds_cli.worker import CredentialsFetcher, CredentialsNotYoursError
from runcreds_dev.stack import EmbeddedStack
from tests.support import (
    EVENTS,
    Tenant,
    apply_trust_policy,
    assumptions_of,
    credentials_of,
    events_for,
    load_event,
    record_items,
    trust_policy,
)

Publish = Callable[..., None]


def set_attachment_fields(stack: EmbeddedStack, tenant: Tenant, integration_id: str, **fields: object) -> None:
    """Changes the attachment's copy of the integration behind the attach API's back (what it would refuse)."""
    store = AttachmentsStore(stack.template.ref("AttachmentsTable"), stack.client("dynamodb"))
    assert store.update_fields(tenant.account, tenant.stack, integration_id, fields)


def caller_arn(stack: EmbeddedStack, process: dict[str, str]) -> str:
    session = stack.session(process["AccessKeyId"], process["SecretAccessKey"], process["SessionToken"])
    return str(stack.client("sts", session).get_caller_identity()["Arn"])


def test_plan_and_apply_get_credentials_for_their_own_access(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # Given a role for plans only (read) and a role for applies only (write), both attached
    reader = make_role(f"{tenant.account}@*@{tenant.stack}@read")
    writer = make_role(f"{tenant.account}@*@{tenant.stack}@write")
    read_id = integrate(tenant, reader, read=True, write=False)
    write_id = integrate(tenant, writer, read=False, write=True)

    # When the plan and then the apply start
    publish(tenant, "plan")
    publish(tenant, "apply")

    # Then each phase got its own role's credentials, in a session named after the run
    plan = credentials_of(stack, tenant, "plan")
    apply = credentials_of(stack, tenant, "apply")
    assert caller_arn(stack, plan).endswith(f"/{reader.split('/')[-1]}/{tenant.run_id}")
    assert caller_arn(stack, apply).endswith(f"/{writer.split('/')[-1]}/{tenant.run_id}")
    ready = events_for(stack, tenant, "Run Phase Credentials Ready")
    assert {(e["phase"], e["integration_id"], e["mode"]) for e in ready} == {
        ("plan", read_id, "broker"),
        ("apply", write_id, "broker"),
    }
    assert all(e["expires_at"] for e in ready)


def test_the_vend_assumes_with_the_documented_identity(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # Given a role whose trust insists on the exact external ID, the run's tags and source identity
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    document = trust_policy(stack.outputs["BrokerRoleArn"], None)
    document["Statement"][0]["Condition"] = {
        "StringEquals": {
            "sts:ExternalId": f"{tenant.account}@{integration_id}@{tenant.stack}@write",
            "sts:SourceIdentity": tenant.run_id,
            "sts:RoleSessionName": tenant.run_id,
            "aws:RequestTag/runcreds:run": tenant.run_id,
            "aws:RequestTag/runcreds:phase": "destroy",
            "aws:RequestTag/runcreds:account": tenant.account,
            "aws:RequestTag/runcreds:stack": tenant.stack,
            "aws:RequestTag/runcreds:integration": integration_id,
        }
    }
    apply_trust_policy(stack, role, document)

    # When a destroy (write) phase starts
    publish(tenant, "destroy")

    # Then the credentials were vended: every condition held
    assert caller_arn(stack, credentials_of(stack, tenant, "destroy")).endswith(f"/{tenant.run_id}")


def test_a_long_run_id_gets_the_hashed_session_name(
    stack: EmbeddedStack, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    tenant = Tenant(account="acme-long", stack="net", run_id="R" * 100)
    integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    session = caller_arn(stack, credentials_of(stack, tenant, "plan")).rsplit("/", 1)[-1]
    assert len(session) == 64
    assert session.startswith("R" * 40 + "--")


def test_a_role_that_does_not_trust_the_external_id_fails_the_run_clearly(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # Given an attached role whose trust is later narrowed to another account's external IDs
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    apply_trust_policy(stack, role, trust_policy(stack.outputs["BrokerRoleArn"], "someone-else@*"))

    # When a plan starts
    publish(tenant, "plan")

    # Then the run learns why at once: a Failed event, a failed record without credentials
    failed = events_for(stack, tenant, "Run Phase Credentials Failed")
    assert len(failed) == 1
    assert failed[0]["integration_id"] == integration_id
    assert failed[0]["code"] == "AccessDenied"
    assert "not authorized to perform: sts:AssumeRole" in failed[0]["reason"]
    assert not events_for(stack, tenant, "Run Phase Credentials Ready")
    (item,) = record_items(stack, tenant, "plan")
    assert item["status"]["S"] == "failed"
    assert "ciphertext" not in item
    assert stack.router.dead_letters == [] or all(
        d["requestPayload"]["detail"]["account"] != tenant.account for d in stack.router.dead_letters
    )


def test_a_duration_above_the_chaining_cap_is_refused_finally(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # Given a broker-mode attachment asking for 2 hours from a role that allows 12 (attached with 1 h, as
    # the attach's verification would refuse 2 h, then raised)
    role = make_role(f"{tenant.account}@*", max_session_duration=43200)
    integration_id = integrate(tenant, role)
    set_attachment_fields(stack, tenant, integration_id, duration_seconds=7200)

    # When an apply starts
    publish(tenant, "apply")

    # Then STS's refusal fails the run at once, and for good: no retry, no dead letter
    (failed,) = events_for(stack, tenant, "Run Phase Credentials Failed")
    assert failed["code"] == "ValidationError"
    assert "role chaining" in failed["reason"]
    (item,) = record_items(stack, tenant, "apply")
    assert item["status"]["S"] == "failed"
    assert not [d for d in stack.router.dead_letters if d["requestPayload"]["detail"]["account"] == tenant.account]


def test_duplicate_deliveries_assume_the_role_once(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    role = make_role(f"{tenant.account}@*")
    integrate(tenant, role)
    before = assumptions_of(role)  # the attach verified read and write

    # When five copies arrive one after another, then five at once
    for _ in range(5):
        publish(tenant, "plan")
    vend = stack.functions["VendCredentialsFunction"]
    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(vend.invoke, [tenant.event("apply")] * 5))

    # Then one AssumeRole per phase, one record per phase, one Ready event per phase
    assert assumptions_of(role) - before == 2
    assert len(record_items(stack, tenant, "plan")) == 1
    assert len(record_items(stack, tenant, "apply")) == 1
    ready = events_for(stack, tenant, "Run Phase Credentials Ready")
    assert sorted(e["phase"] for e in ready) == ["apply", "plan"]


def test_records_hold_no_plaintext_and_only_their_run_can_decrypt(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))
    publish(tenant, "plan")
    process = credentials_of(stack, tenant, "plan")
    (item,) = record_items(stack, tenant, "plan")
    stored = json.dumps(item, default=str)
    in_the_clear = [name for name in ("SecretAccessKey", "SessionToken") if process[name] in stored]
    assert not in_the_clear, f"the record holds these in the clear: {in_the_clear}"

    # Decrypting under another run's context fails
    other = RunPhase(account=tenant.account, stack=tenant.stack, run_id="another-run", phase=Phase.PLAN)
    with pytest.raises(ClientError) as caught:
        stack.client("kms").decrypt(
            CiphertextBlob=item["ciphertext"]["B"], EncryptionContext=RunScope(other, integration_id).encryption_context
        )
    assert caught.value.response["Error"]["Code"] == "InvalidCiphertextException"

    # And a record copied under another run's key is refused by the worker as not its own
    forged = dict(item)
    forged["run_key"] = {"S": f"{tenant.account}#{tenant.stack}#another-run#plan"}
    forged["run_id"] = {"S": "another-run"}
    stack.client("dynamodb").put_item(TableName=stack.outputs["CredentialsTableName"], Item=forged)
    with pytest.raises(CredentialsNotYoursError):
        CredentialsFetcher(stack.outputs["CredentialsTableName"]).fetch(other)


@pytest.mark.parametrize("name", sorted(p.name for p in (EVENTS / "invalid").glob("*.json")))
def test_invalid_events_are_dropped_with_their_reason_and_make_no_aws_call(stack: EmbeddedStack, name: str) -> None:
    # Given an invalid run-phase event (a valid one would at least Query the attachments)
    event = load_event(f"invalid/{name}")
    mark = stack.aws.calls.mark()
    logged = len(stack.logs.lines)

    # When it is delivered, the invocation succeeds: no retry, no dead letter, for what no retry can fix
    result = stack.functions["VendCredentialsFunction"].invoke(event)

    # Then it was dropped with its reason, logged and counted, without any AWS call
    assert result["dropped"].startswith("invalid run-phase event")
    deadline = time.monotonic() + 5  # the function's log lines arrive through a pipe
    while not any('"InvalidRunEvents"' in line for _, line in stack.logs.lines[logged:]):
        assert time.monotonic() < deadline, "the drop was not counted"
        time.sleep(0.05)
    assert any("invalid run-phase event dropped" in line for _, line in stack.logs.lines[logged:])
    assert stack.aws.calls.since(mark) == []


def test_run_phase_finished_erases_the_credentials_and_stops_a_late_duplicate(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    role = make_role(f"{tenant.account}@*")
    integrate(tenant, role)
    publish(tenant, "apply")
    publish(tenant, "apply", detail_type="Run Phase Finished")
    (item,) = record_items(stack, tenant, "apply")
    assert item["status"]["S"] == "finished"
    assert "ciphertext" not in item
    assumed = assumptions_of(role)
    publish(tenant, "apply")  # a duplicate of the Started event, late
    assert assumptions_of(role) == assumed


def test_a_transient_sts_failure_is_retried_and_then_succeeds(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    integrate(tenant, make_role(f"{tenant.account}@*"))
    stack.functions["VendCredentialsFunction"].warm()  # the broker session is cached: throttles hit the vend
    stack.aws.strict_sts.inject("Throttling", times=3)  # botocore's 3 attempts of the first invocation
    try:
        publish(tenant, "plan")
        throttles_not_hit = stack.aws.strict_sts.pending_faults
    finally:
        stack.aws.strict_sts.clear_faults()
    assert throttles_not_hit == 0
    assert [e["phase"] for e in events_for(stack, tenant, "Run Phase Credentials Ready")] == ["plan"]
    (item,) = record_items(stack, tenant, "plan")
    assert item["status"]["S"] == "ready"


def test_an_exhausted_transient_failure_lands_in_the_dead_letter_queue(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    integrate(tenant, make_role(f"{tenant.account}@*"))
    stack.aws.strict_sts.inject("ServiceUnavailable", times=1000, status=503)  # STS is down throughout
    try:
        publish(tenant, "plan")
    finally:
        stack.aws.strict_sts.clear_faults()
    assert record_items(stack, tenant, "plan") == []  # the claim was released for the next try
    sqs = stack.client("sqs")
    url = stack.outputs["VendDeadLetterQueueUrl"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    mine = [b for b in bodies if b["requestPayload"]["detail"]["account"] == tenant.account]
    assert len(mine) == 1
    assert mine[0]["requestContext"]["condition"] == "RetriesExhausted"
    assert mine[0]["responsePayload"]["errorType"] == "TransientAwsError"


def test_a_warm_vend_makes_exactly_the_seven_unavoidable_requests(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # Given one warm container that has vended before (its broker session is cached)
    integrate(tenant, make_role(f"{tenant.account}@*"))
    vend = stack.functions["VendCredentialsFunction"]
    vend.stop()
    vend.invoke(tenant.event("plan"))

    # When the next phase is vended
    mark = stack.aws.calls.mark()
    vend.invoke(tenant.event("apply"))

    # Then it made the seven requests a vend cannot avoid, and no others
    assert sorted(stack.aws.calls.since(mark)) == sorted(
        [
            ("dynamodb", "Query"),  # the stack's attachments
            ("dynamodb", "TransactWriteItems"),  # the claim, conditional on the phase being open
            ("sts", "AssumeRole"),
            ("kms", "Encrypt"),
            ("dynamodb", "TransactWriteItems"),  # the record, its audit session mappings, the phase check
            ("events", "PutEvents"),  # Run Phase Credentials Ready
            ("dynamodb", "UpdateItem"),  # the record marked announced (a retry re-announces it otherwise)
        ]
    )


def test_sts_is_called_in_the_integrations_region(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # Given an attached integration whose region is then set to one where STS is not activated
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"), region="eu-west-1")
    set_attachment_fields(stack, tenant, integration_id, region="af-south-1")
    # When a plan starts, the regional STS refuses: the vend went to that region's endpoint
    publish(tenant, "plan")
    (failed,) = events_for(stack, tenant, "Run Phase Credentials Failed")
    assert failed["code"] == "RegionDisabledException"
