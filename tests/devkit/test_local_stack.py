"""The embedded stack is template.yaml, not a second copy of it."""

from __future__ import annotations

from runcreds_dev.stack import EmbeddedStack


def test_tables_have_the_template_key_schema_indexes_and_ttl(stack: EmbeddedStack) -> None:
    ddb = stack.client("dynamodb")
    tables = stack.template.of_type("AWS::DynamoDB::Table")
    assert tables
    for logical_id, resource in tables.items():
        props = resource["Properties"]
        table = ddb.describe_table(TableName=stack.template.ref(logical_id))["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        declared = {g["IndexName"]: g["KeySchema"] for g in props.get("GlobalSecondaryIndexes", [])}
        assert {g["IndexName"]: g["KeySchema"] for g in table.get("GlobalSecondaryIndexes", [])} == declared
        if ttl := props.get("TimeToLiveSpecification"):
            status = ddb.describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
            assert status["AttributeName"] == ttl["AttributeName"]


def test_functions_run_with_the_template_environment_and_role(stack: EmbeddedStack) -> None:
    for logical_id, spec in stack.template.functions().items():
        environment = stack.functions[logical_id].environment
        for key, value in spec.environment.items():
            assert environment[key] == value
        assert environment["AWS_SESSION_TOKEN"]  # the execution role's session, as on Lambda
    for logical_id in ("VendCredentialsFunction", "AttachApiFunction", "ReverifyAttachmentsFunction"):
        assert stack.functions[logical_id].environment["RUNCREDS_BROKER_ROLE_ARN"] == stack.outputs["BrokerRoleArn"]


def test_the_broker_role_trusts_only_the_stacks_functions(stack: EmbeddedStack) -> None:
    import json
    from urllib.parse import unquote

    role = stack.client("iam").get_role(RoleName=stack.outputs["BrokerRoleArn"].rsplit("/", 1)[-1])["Role"]
    document = role["AssumeRolePolicyDocument"]
    document = json.loads(unquote(document)) if isinstance(document, str) else document
    principals = set(document["Statement"][0]["Principal"]["AWS"])
    function_roles = {
        stack.template.getatt(spec.role_logical_id, "Arn")
        for spec in stack.template.functions().values()
        if spec.role_logical_id
    }
    assert principals
    assert principals <= function_roles  # no principal but the stack's own functions
