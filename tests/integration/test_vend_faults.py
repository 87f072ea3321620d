"""Fault injection into the vend (docs/reliability.md, section Vend): AWS failing in each way it can,
through the template's function, Lambda's retries and its dead-letter queue. Every case ends in
delivered credentials, or a Failed event, or a dead-letter message: none is silent."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import parse_qs

import pytest

from runcreds import aws
from runcreds_dev.faults import Fault, Request, caller_is, put_events_partial_failure
from runcreds_dev.stack import EmbeddedStack
from tests.support import Tenant, assumptions_of, credentials_of, events_for, record_items, trust_policy

Publish = Callable[..., None]
READY = "Run Phase Credentials Ready"
FAILED = "Run Phase Credentials Failed"
# The attempts botocore makes of one request (runcreds.aws: max_attempts 3 retries, 4 in all): this many
# faults fail one invocation.
ATTEMPTS = 4
PARTIAL_FAILURE = "PartialFailure"  # PutEvents answering 200 with every entry failed


@pytest.fixture
def faults(stack: EmbeddedStack) -> Iterator[Callable[..., Fault]]:
    """Injects faults into what the vend function's own role calls (not the tests' or the broker's), for
    the rest of the test. `times` defaults to one request."""
    key = stack.functions["VendCredentialsFunction"].environment["AWS_ACCESS_KEY_ID"]
    with ExitStack() as injected:

        def inject(service: str, action: str, code: str, times: int = 1, **options: Any) -> Fault:
            if code == PARTIAL_FAILURE:
                return injected.enter_context(
                    stack.aws.faults.inject(
                        service, action, answer=put_events_partial_failure, times=times, when=caller_is(key), **options
                    )
                )
            return injected.enter_context(
                stack.aws.faults.inject(service, action, code, times=times, when=caller_is(key), **options)
            )

        yield inject
    stack.aws.strict_sts.clear_faults()


class Crash(BaseException):
    """The process dying (timeout, out of memory): no handler runs, nothing is cleaned up."""


def dead_letters_of(stack: EmbeddedStack, tenant: Tenant) -> list[dict[str, Any]]:
    return [d for d in stack.router.dead_letters if d["requestPayload"]["detail"]["account"] == tenant.account]


def expire_leases(stack: EmbeddedStack, tenant: Tenant, phase: str) -> None:
    """What the passing of CLAIM_LEASE_SECONDS does to the phase's claims."""
    for item in record_items(stack, tenant, phase):
        stack.client("dynamodb").update_item(
            TableName=stack.outputs["CredentialsTableName"],
            Key={"run_key": item["run_key"], "integration_id": item["integration_id"]},
            UpdateExpression="SET claimed_until = :past",
            ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
        )


def assert_delivered_once(stack: EmbeddedStack, tenant: Tenant, phase: str) -> None:
    assert credentials_of(stack, tenant, phase)["AccessKeyId"]
    assert [e["phase"] for e in events_for(stack, tenant, READY)] == [phase]
    assert not events_for(stack, tenant, FAILED)
    assert not dead_letters_of(stack, tenant)
    (item,) = record_items(stack, tenant, phase)
    assert "unannounced" not in item


def test_the_brokers_own_hop_refused_is_no_verdict_on_the_customer_role(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # Given a cold vend function whose first AssumeRole, its own hop to BrokerRole, is refused (IAM
    # propagation, a trust edit being rolled out)
    integrate(tenant, make_role(f"{tenant.account}@*"))
    vend = stack.functions["VendCredentialsFunction"]
    vend.stop()
    logged = len(stack.logs.lines)
    stack.aws.strict_sts.inject("AccessDenied", times=1, status=403)
    try:
        publish(tenant, "plan")
    finally:
        stack.aws.strict_sts.clear_faults()

    # Then the run is not failed: Lambda's retry vended, and the operator's metric counted it
    assert_delivered_once(stack, tenant, "plan")
    assert any('"BrokerUnavailable"' in line for _, line in stack.logs.lines[logged:])


@pytest.mark.parametrize("code", ["AccessDeniedException", "DisabledException", "NotFoundException"])
def test_kms_refusing_the_key_fails_the_phase_with_its_code_at_once(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Publish,
    faults: Callable[..., Fault],
    code: str,
) -> None:
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))
    fault = faults("kms", "Encrypt", code, times=5)
    publish(tenant, "apply")
    assert fault.hits == 1  # one call: not retried by anyone
    (failed,) = events_for(stack, tenant, FAILED)
    assert (failed["integration_id"], failed["code"]) == (integration_id, code)
    (item,) = record_items(stack, tenant, "apply")
    assert (item["status"]["S"], item["failure_code"]["S"]) == ("failed", code)
    assert not dead_letters_of(stack, tenant)


MIXED_REASONS = [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}, {"Code": "ThrottlingError"}]


@pytest.mark.parametrize(
    ("service", "action", "code", "status", "options"),
    [
        ("kms", "Encrypt", "ThrottlingException", 400, {"times": ATTEMPTS}),
        ("kms", "Encrypt", "KMSInternalException", 500, {"times": ATTEMPTS}),
        ("dynamodb", "TransactWriteItems", "ProvisionedThroughputExceededException", 400, {"times": ATTEMPTS}),
        (  # botocore does not retry a cancelled transaction: one fault fails the invocation
            "dynamodb",
            "TransactWriteItems",
            "TransactionCanceledException",
            400,
            {"times": 1, "answer": {"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]}},
        ),
        (  # the record's write (after the claim) cancelled for a condition AND throttling: no answer yet, so
            # the claim must be released for the retry, not left to make the retry a "duplicate"
            "dynamodb",
            "TransactWriteItems",
            "TransactionCanceledException",
            400,
            {"times": 1, "after": 1, "answer": {"CancellationReasons": MIXED_REASONS}},
        ),
    ],
    ids=[
        "kms-throttling",
        "kms-internal-error",
        "dynamodb-throttling",
        "dynamodb-transaction-conflict",
        "dynamodb-completion-cancelled-by-a-condition-and-throttling",
    ],
)
def test_a_transient_fault_for_one_invocation_is_retried_to_delivery(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Publish,
    faults: Callable[..., Fault],
    service: str,
    action: str,
    code: str,
    status: int,
    options: dict[str, Any],
) -> None:
    # Given a fault on every attempt botocore makes in the first invocation (or on its one attempt)
    integrate(tenant, make_role(f"{tenant.account}@*"))
    faults(service, action, code, status=status, **options)
    publish(tenant, "plan")
    # Then Lambda's retry delivered, once; no Failed verdict, nothing left unannounced
    assert_delivered_once(stack, tenant, "plan")


def assuming(role_arn: str) -> Callable[[Request], bool]:
    """Only AssumeRole requests for this role (not the broker's own hop, which a fresh container makes first)."""
    return lambda request: parse_qs(request.body.decode()).get("RoleArn") == [role_arn]


@pytest.mark.parametrize(("code", "status"), [("ServiceUnavailable", 503), ("InternalFailure", 500), ("Unknown", 502)])
def test_sts_5xx_for_one_invocation_is_retried_to_delivery_not_a_verdict(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str],
    publish: Publish, code: str, status: int,
) -> None:  # fmt: skip
    # Given STS failing on its side for every attempt the first invocation makes of the customer's role
    role = make_role(f"{tenant.account}@*")
    integrate(tenant, role)
    with stack.aws.faults.inject(
        "sts", "AssumeRole", code, status=status, times=ATTEMPTS, when=assuming(role)
    ) as fault:
        publish(tenant, "plan")
    assert fault.hits == ATTEMPTS
    # Then Lambda's retry delivered: no Failed verdict with STS's code
    assert_delivered_once(stack, tenant, "plan")


def test_a_transient_fault_that_outlasts_the_retries_ends_in_the_dead_letter_queue(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Publish,
    faults: Callable[..., Fault],
) -> None:
    integrate(tenant, make_role(f"{tenant.account}@*"))
    faults("kms", "Encrypt", "KMSInternalException", status=500, times=1000)
    publish(tenant, "plan")
    (dead,) = dead_letters_of(stack, tenant)
    assert dead["responsePayload"]["errorType"] == "TransientAwsError"
    assert not events_for(stack, tenant, FAILED)  # AWS failing is no verdict on the run
    assert record_items(stack, tenant, "plan") == []  # released: a redrive vends at once


def test_put_events_failing_is_announced_by_the_retry(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Publish,
    faults: Callable[..., Fault],
) -> None:
    # Given EventBridge failing every entry of the vend's three PutEvents attempts
    role = make_role(f"{tenant.account}@*")
    integrate(tenant, role)
    assumed = assumptions_of(role)
    faults("events", "PutEvents", PARTIAL_FAILURE, times=3)  # its own three, not botocore's
    publish(tenant, "apply")
    # Then the retry announced the recorded credentials (without assuming the role again)
    assert_delivered_once(stack, tenant, "apply")
    assert assumptions_of(role) == assumed + 1


def test_what_was_recorded_is_announced_when_a_later_integration_fails(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Publish,
    faults: Callable[..., Fault],
) -> None:
    # Given two integrations: the first vends; the second's Encrypt fails, and so does giving its claim back
    first = integrate(tenant, make_role(f"{tenant.account}@*"))
    second = integrate(tenant, make_role(f"{tenant.account}@*"))
    faults("kms", "Encrypt", "KMSInternalException", status=500, times=ATTEMPTS, after=1)
    faults("dynamodb", "DeleteItem", "ProvisionedThroughputExceededException", times=ATTEMPTS)
    publish(tenant, "plan")
    # Then both were announced, once each: the first by the failing invocation, the second by a retry
    # once its claim's lease ran out
    assert {e["integration_id"] for e in events_for(stack, tenant, READY)} == {first}
    expire_leases(stack, tenant, "plan")
    publish(tenant, "plan")  # Lambda's next retry, or a redrive
    ready = sorted(e["integration_id"] for e in events_for(stack, tenant, READY))
    assert ready == sorted([first, second])


def test_a_crash_between_assume_role_and_the_record_is_taken_over_after_the_lease(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Publish,
    vend_here: Callable[[dict[str, Any]], Any],
) -> None:
    # Given an invocation that dies after its AssumeRole, before anything is encrypted or written
    integrate(tenant, make_role(f"{tenant.account}@*"))

    def die(**_kwargs: Any) -> None:
        raise Crash

    aws.kms().meta.events.register("before-call.kms.Encrypt", die)
    with pytest.raises(Crash):
        vend_here(tenant.event("plan"))
    (claim,) = record_items(stack, tenant, "plan")
    assert claim["status"]["S"] == "pending"

    # When a retry comes within the lease, it leaves the claim alone; after it, it takes over
    publish(tenant, "plan")
    assert not events_for(stack, tenant, READY)
    expire_leases(stack, tenant, "plan")
    publish(tenant, "plan")
    assert_delivered_once(stack, tenant, "plan")


def test_a_stalled_invocation_whose_claim_was_taken_over_writes_nothing(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Publish,
    vend_here: Callable[[dict[str, Any]], Any],
) -> None:
    # Given an invocation that stalls past its lease after AssumeRole, while a retry takes over and vends
    integration_id = integrate(tenant, make_role(f"{tenant.account}@*"))

    def stall(**_kwargs: Any) -> None:
        expire_leases(stack, tenant, "plan")
        publish(tenant, "plan")

    aws.kms().meta.events.register("before-call.kms.Encrypt", stall)
    result = vend_here(tenant.event("plan"))

    # Then the stalled one's completion fails its condition: it neither overwrites nor announces, and
    # names the integration it left to the other as a duplicate
    assert result == {"duplicates": [integration_id]}
    assert_delivered_once(stack, tenant, "plan")


def test_dynamodb_refusing_a_write_for_good_is_not_silent(
    stack: EmbeddedStack,
    tenant: Tenant,
    make_role: Callable[..., str],
    integrate: Callable[..., str],
    publish: Publish,
    faults: Callable[..., Fault],
) -> None:
    # A fault no retry cures and that is no verdict on the run (a validation error: a bug, a limit)
    integrate(tenant, make_role(f"{tenant.account}@*"))
    faults("dynamodb", "TransactWriteItems", "ValidationException", times=1000)
    publish(tenant, "plan")
    (dead,) = dead_letters_of(stack, tenant)
    assert dead["responsePayload"]["errorType"] == "ClientError"


def test_the_role_refusing_is_final_even_under_sts_5xx_first(
    stack: EmbeddedStack, tenant: Tenant, make_role: Callable[..., str], integrate: Callable[..., str], publish: Publish
) -> None:
    # STS failing (503) for the first invocation's attempts, then the role's own refusal: a Failed verdict
    role = make_role(f"{tenant.account}@*")
    integration_id = integrate(tenant, role)
    stack.customer_client("iam").update_assume_role_policy(
        RoleName=role.rsplit("/", 1)[1],
        PolicyDocument=json.dumps(trust_policy(stack.outputs["BrokerRoleArn"], "someone-else@*")),
    )
    # (only the customer role's AssumeRole: a fresh container's own hop to BrokerRole would take them first)
    with stack.aws.faults.inject(
        "sts", "AssumeRole", "ServiceUnavailable", status=503, times=ATTEMPTS, when=assuming(role)
    ) as fault:
        publish(tenant, "plan")
    assert fault.hits == ATTEMPTS
    (failed,) = events_for(stack, tenant, FAILED)
    assert (failed["integration_id"], failed["code"]) == (integration_id, "AccessDenied")
