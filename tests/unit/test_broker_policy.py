"""BrokerRole's identity policies as template.yaml renders them (issue 8): the broker never assumes a role
of runcreds' own account, and with AllowedCustomerAccountIds or AllowedCustomerOrganizationId only roles
of those accounts. The rendered documents are evaluated as IAM would, per role account and organization."""

from __future__ import annotations

from typing import Any

import pytest

from runcreds_dev.sts_rules import identity_policies_allow
from runcreds_dev.template import ACCOUNT_ID, Template
from tests.support import ROOT

CUSTOMER, OTHER = "111122223333", "444455556666"
ORG = "o-abcdefghij"


def broker_policies(**parameters: str) -> list[dict[str, Any]]:
    """Every identity policy BrokerRole gets in a deployment with these parameters."""
    template = Template(ROOT / "template.yaml")
    template.parameters.update(parameters)
    template.ref_hook = lambda logical_id: f"{logical_id}-name"
    role = template.resources["BrokerRole"]
    documents = [template.resolve(p["PolicyDocument"]) for p in role["Properties"]["Policies"]]
    for resource in template.of_type("AWS::IAM::RolePolicy").values():
        deployed = "Condition" not in resource or template.condition(resource["Condition"])
        if deployed and resource["Properties"]["RoleName"] == {"Ref": "BrokerRole"}:
            documents.append(template.resolve(resource["Properties"]["PolicyDocument"]))
    return documents


def may_assume(policies: list[dict[str, Any]], account: str, org: str | None = None) -> bool:
    context = {"aws:ResourceAccount": account, **({"aws:ResourceOrgID": org} if org else {})}
    return all(identity_policies_allow(policies, action, context) for action in ("sts:AssumeRole", "sts:TagSession"))


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"AllowedCustomerAccountIds": f"{CUSTOMER},{ACCOUNT_ID}"},
        {"AllowedCustomerOrganizationId": ORG},
    ],
)
def test_the_broker_never_assumes_a_role_of_its_own_account(parameters: dict[str, str]) -> None:
    # Given the broker's policies, however customer accounts are restricted (even one that lists its own)
    policies = broker_policies(**parameters)

    # Then a role of runcreds' own account is denied, even inside the allowed organization
    assert not may_assume(policies, ACCOUNT_ID, ORG)


def test_without_restrictions_any_customer_account_is_allowed() -> None:
    policies = broker_policies()
    assert may_assume(policies, CUSTOMER) and may_assume(policies, OTHER)


def test_allowed_customer_account_ids_allow_only_those_accounts() -> None:
    policies = broker_policies(AllowedCustomerAccountIds=f"{CUSTOMER},{OTHER}")
    assert may_assume(policies, CUSTOMER) and may_assume(policies, OTHER)
    assert not may_assume(policies, "777788889999")
    assert not may_assume(policies, "777788889999", ORG)


def test_an_organization_allows_its_accounts_and_listed_ones_besides() -> None:
    only_org = broker_policies(AllowedCustomerOrganizationId=ORG)
    assert may_assume(only_org, CUSTOMER, ORG)
    assert not may_assume(only_org, CUSTOMER, "o-zzzzzzzzzz")
    assert not may_assume(only_org, CUSTOMER)  # an account in no organization

    both = broker_policies(AllowedCustomerOrganizationId=ORG, AllowedCustomerAccountIds=OTHER)
    assert may_assume(both, CUSTOMER, ORG) and may_assume(both, OTHER)
    assert not may_assume(both, CUSTOMER)
