"""Who may decrypt, encrypt and publish, as template.yaml renders it (issue 8): the key policy, the two
worker managed policies and the run bus policy, each evaluated as IAM would for concrete requests.

The attacks: a principal of runcreds' account with kms:Decrypt on "*" (and read access to the table)
decrypting every tenant's credentials; a plan worker reading and decrypting the apply phase's write
credentials; a worker of one account or stack reaching another's; anyone but the orchestrator starting
a vend, anyone but runcreds announcing credentials."""

from __future__ import annotations

from typing import Any

import pytest

from runcreds_dev.iam_policy import Context, Decision, evaluate
from runcreds_dev.template import ACCOUNT_ID, Template
from tests.support import ROOT

ROOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:root"
VEND_ROLE = "VendFunctionRole-Arn"
ATTACH_ROLE = "AttachFunctionRole-Arn"  # the refresh route lives in the attach function
TABLE, KEY, BUS = "CredentialsTable-Arn", "CredentialsKey-Arn", "RunEventBus-Arn"
ORCHESTRATOR = f"arn:aws:iam::{ACCOUNT_ID}:role/orchestrator"


def rendered(**parameters: str) -> Template:
    template = Template(ROOT / "template.yaml")
    template.parameters.update(parameters)
    template.ref_hook = lambda logical_id: f"{logical_id}-Ref"
    template.getatt_hook = lambda logical_id, attribute: f"{logical_id}-{attribute}"
    return template


def key_policy_for(principal: str) -> list[dict[str, Any]]:
    """The key policy's statements that apply to `principal`: those naming it, and those naming the
    account root (which delegate to the principal's identity policies, assumed here to allow)."""
    template = rendered()
    document = template.resolve(template.resources["CredentialsKey"]["Properties"]["KeyPolicy"])
    return [
        {k: v for k, v in statement.items() if k != "Principal"}
        for statement in document["Statement"]
        if {principal, ROOT_ARN} & set(_as_list(statement["Principal"]["AWS"]))
    ]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def worker_policy(name: str) -> dict[str, Any]:
    template = rendered()
    return dict(template.resolve(template.resources[name]["Properties"]["PolicyDocument"]))


def encryption_context(account: str, stack: str, phase: str) -> dict[str, str]:
    return {
        "kms:EncryptionContext:runcreds:account": account,
        "kms:EncryptionContext:runcreds:stack": stack,
        "kms:EncryptionContext:runcreds:run": "01RUN",
        "kms:EncryptionContext:runcreds:phase": phase,
        "kms:EncryptionContext:runcreds:integration": "01INTEGRATION",
    }


def tags(account: str | None, stack: str | None = None) -> dict[str, str]:
    return {
        **({"aws:PrincipalTag/runcreds:account": account} if account else {}),
        **({"aws:PrincipalTag/runcreds:stack": stack} if stack else {}),
    }


def key_decides(principal: str, action: str, context: Context) -> Decision:
    return evaluate(
        [{"Statement": key_policy_for(principal)}], action, KEY, {"kms:CallerAccount": ACCOUNT_ID, **context}
    )


# ---------------------------------------------------------------- the key policy
def test_an_untagged_principal_with_decrypt_on_everything_decrypts_nothing() -> None:
    # Given a principal of runcreds' account whose identity policy allows kms:Decrypt on "*", without tags
    context = encryption_context("acme", "net", "apply")

    # Then the key policy does not let it decrypt any tenant's credentials
    assert key_decides("arn:aws:iam::123456789012:role/ci", "kms:Decrypt", context) != Decision.ALLOW


def test_a_tagged_worker_decrypts_its_own_account_only() -> None:
    worker = "arn:aws:iam::123456789012:role/acme-worker"
    assert key_decides(worker, "kms:Decrypt", {**encryption_context("acme", "net", "plan"), **tags("acme")}) == (
        Decision.ALLOW
    )
    assert key_decides(worker, "kms:Decrypt", {**encryption_context("globex", "net", "plan"), **tags("acme")}) != (
        Decision.ALLOW
    )
    # A ciphertext without a run's encryption context is nobody's to decrypt
    assert key_decides(worker, "kms:Decrypt", {"kms:EncryptionContext:runcreds:account": "acme", **tags("acme")}) != (
        Decision.ALLOW
    )


@pytest.mark.parametrize(
    "action",
    # a grant is a decryption by other means: an administrator could grant itself kms:Decrypt
    ["kms:Decrypt", "kms:Encrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:CreateGrant"],
)
def test_administrators_administer_but_hold_no_cryptographic_action(action: str) -> None:
    # Given the account's administrators (the root delegation, no runcreds tag)
    context = encryption_context("acme", "net", "apply")

    assert key_decides(ROOT_ARN, action, context) != Decision.ALLOW
    assert key_decides(ROOT_ARN, "kms:PutKeyPolicy", {}) == Decision.ALLOW  # no lock-out
    assert key_decides(ROOT_ARN, "kms:ScheduleKeyDeletion", {}) == Decision.ALLOW


@pytest.mark.parametrize("role", [VEND_ROLE, ATTACH_ROLE])
def test_only_the_vend_function_and_the_refresh_route_encrypt_and_only_run_credentials(role: str) -> None:
    context = encryption_context("acme", "net", "apply")
    assert key_decides(role, "kms:Encrypt", context) == Decision.ALLOW
    assert key_decides(role, "kms:Encrypt", {"kms:EncryptionContext:runcreds:account": "acme"}) != Decision.ALLOW
    assert key_decides(role, "kms:Decrypt", {**context, **tags(None)}) != Decision.ALLOW
    assert key_decides("arn:aws:iam::123456789012:role/ci", "kms:Encrypt", context) != Decision.ALLOW


# ---------------------------------------------------------------- the worker policies
READ, WRITE = "WorkerReadPhasePolicy", "WorkerWritePhasePolicy"


def may_read(policy: str, run_key: str, principal_tags: dict[str, str]) -> bool:
    context = {"dynamodb:LeadingKeys": [run_key], **principal_tags}
    return evaluate([worker_policy(policy)], "dynamodb:Query", TABLE, context) == Decision.ALLOW


def may_decrypt(policy: str, account: str, stack: str, phase: str, principal_tags: dict[str, str]) -> bool:
    context = {**encryption_context(account, stack, phase), **principal_tags}
    return evaluate([worker_policy(policy)], "kms:Decrypt", KEY, context) == Decision.ALLOW


@pytest.mark.parametrize(("policy", "own", "other"), [(READ, "plan", "apply"), (WRITE, "apply", "plan")])
def test_a_worker_reads_and_decrypts_its_phases_only(policy: str, own: str, other: str) -> None:
    acme = tags("acme")
    assert may_read(policy, f"acme#net#01RUN#{own}", acme)
    assert may_decrypt(policy, "acme", "net", own, acme)
    # The attack: a plan worker reaching the apply phase's write credentials (and the reverse)
    assert not may_read(policy, f"acme#net#01RUN#{other}", acme)
    assert not may_decrypt(policy, "acme", "net", other, acme)


@pytest.mark.parametrize("policy", [READ, WRITE])
def test_a_worker_never_reaches_another_account(policy: str) -> None:
    phase = "plan" if policy == READ else "apply"
    assert not may_read(policy, f"globex#net#01RUN#{phase}", tags("acme"))
    assert not may_read(policy, f"acme-evil#net#01RUN#{phase}", tags("acme"))
    assert not may_decrypt(policy, "globex", "net", phase, tags("acme"))
    # An untagged role gets nothing at all
    assert not may_read(policy, f"acme#net#01RUN#{phase}", tags(None))
    assert not may_decrypt(policy, "acme", "net", phase, tags(None))


@pytest.mark.parametrize("policy", [READ, WRITE])
def test_a_stack_tag_narrows_the_worker_to_its_stack(policy: str) -> None:
    phase = "drift" if policy == READ else "destroy"
    pinned = tags("acme", "net")
    assert may_read(policy, f"acme#net#01RUN#{phase}", pinned)
    assert may_decrypt(policy, "acme", "net", phase, pinned)
    assert not may_read(policy, f"acme#billing#01RUN#{phase}", pinned)
    assert not may_decrypt(policy, "acme", "billing", phase, pinned)
    # Without the stack tag the account's every stack is reachable
    assert may_read(policy, f"acme#billing#01RUN#{phase}", tags("acme"))


def test_the_worker_policies_grant_nothing_but_query_and_decrypt() -> None:
    for policy in (READ, WRITE):
        for action in ("dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem", "kms:Encrypt"):
            context = {"dynamodb:LeadingKeys": ["acme#net#01RUN#plan"], **tags("acme")}
            assert evaluate([worker_policy(policy)], action, TABLE, context) != Decision.ALLOW


# ---------------------------------------------------------------- the run bus
def bus_denies(principal: str, source: str) -> bool:
    template = rendered(OrchestratorPrincipalArns=ORCHESTRATOR)
    documents = [
        {"Statement": [template.resolve(resource["Properties"]["Statement"])]}
        for resource in template.of_type("AWS::Events::EventBusPolicy").values()
        if resource["Properties"]["EventBusName"] == {"Ref": "RunEventBus"}
    ]
    context = {"events:source": source, "aws:PrincipalArn": principal}
    return evaluate(documents, "events:PutEvents", BUS, context) == Decision.EXPLICIT_DENY


def test_only_the_orchestrator_starts_vends() -> None:
    assert not bus_denies(ORCHESTRATOR, "runcreds.runs")
    assert bus_denies(f"arn:aws:iam::{ACCOUNT_ID}:role/tenant-ci", "runcreds.runs")
    assert bus_denies(VEND_ROLE, "runcreds.runs")


def test_only_runcreds_functions_announce_credentials() -> None:
    assert not bus_denies(VEND_ROLE, "runcreds.broker")
    assert not bus_denies("ReverifyFunctionRole-Arn", "runcreds.broker")
    assert bus_denies(ORCHESTRATOR, "runcreds.broker")
    assert bus_denies(f"arn:aws:iam::{ACCOUNT_ID}:role/tenant-ci", "runcreds.broker")


# ---------------------------------------------------------------- the refresh route (long runs)
def may_refresh(policy: str, account: str, stack: str, phase: str, principal_tags: dict[str, str]) -> bool:
    resource = (
        f"arn:aws:execute-api:us-east-1:{ACCOUNT_ID}:RuncredsApi-Ref/v1/POST/accounts/{account}/stacks/{stack}"
        f"/runs/01RUN/phases/{phase}/refresh"
    )
    decision = evaluate([worker_policy(policy)], "execute-api:Invoke", resource, principal_tags)
    return decision == Decision.ALLOW


def test_a_worker_refreshes_only_its_own_accounts_phases_of_its_kind() -> None:
    assert may_refresh(READ, "acme", "net", "plan", tags("acme"))
    assert may_refresh(WRITE, "acme", "net", "apply", tags("acme"))
    # A plan worker cannot refresh an apply (write) phase, nor an apply worker a plan
    assert not may_refresh(READ, "acme", "net", "apply", tags("acme"))
    assert not may_refresh(WRITE, "acme", "net", "plan", tags("acme"))
    # Another account's phases, or no tag at all: nothing
    assert not may_refresh(WRITE, "globex", "net", "apply", tags("acme"))
    assert not may_refresh(WRITE, "acme", "net", "apply", tags(None))


def test_a_stack_tagged_worker_refreshes_only_its_stack() -> None:
    assert may_refresh(WRITE, "acme", "net", "apply", tags("acme", "net"))
    assert not may_refresh(WRITE, "acme", "db", "apply", tags("acme", "net"))
