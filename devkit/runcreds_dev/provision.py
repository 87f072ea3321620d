"""Creates in the embedded AWS what template.yaml declares, and says what each logical ID became."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runcreds_dev.template import ACCOUNT_ID, PARTITION, REGION, Template

# Types that exist only for AWS itself (policies attached elsewhere, the layer, the API whose local
# stand-in is runcreds_dev.api_gateway) need no local resource. Resource policies (queue, bus) are
# not enforced by moto, so they are not created either.
_NOT_PROVISIONED = {
    "AWS::Serverless::LayerVersion",
    "AWS::Serverless::Api",
    "AWS::SQS::QueuePolicy",
    "AWS::Events::EventBusPolicy",
    "AWS::Serverless::Function",
    "AWS::Lambda::Permission",
    "AWS::ApiGateway::Account",
}


class Provisioner:
    def __init__(self, template: Template, client_factory: Callable[[str], Any]) -> None:
        self.template = template
        self.client = client_factory
        self.physical: dict[str, dict[str, str]] = {}
        template.ref_hook = self.ref
        template.getatt_hook = self.getatt

    def name_for(self, logical_id: str) -> str:
        return f"{self.template.stack_name}-{logical_id}"

    # ------------------------------------------------------------------ Ref / GetAtt
    def ref(self, logical_id: str) -> str:
        return self._attributes(logical_id)["Ref"]

    def getatt(self, logical_id: str, attribute: str) -> str:
        return self._attributes(logical_id)[attribute]

    def _attributes(self, logical_id: str) -> dict[str, str]:
        if logical_id not in self.physical:
            self.physical[logical_id] = self._create(logical_id, self.template.resources[logical_id])
        return self.physical[logical_id]

    def provision_all(self) -> dict[str, dict[str, str]]:
        for logical_id, resource in self.template.resources.items():
            deployed = "Condition" not in resource or self.template.condition(resource["Condition"])
            if deployed and resource["Type"] not in _NOT_PROVISIONED:
                self._attributes(logical_id)
        return self.physical

    def retire_undeployed(self) -> None:
        """Resources whose Condition no longer holds are deleted (only KMS keys are modelled: scheduled for
        deletion, so they sign and publish nothing any more)."""
        for logical_id in list(self.physical):
            resource = self.template.resources[logical_id]
            if "Condition" not in resource or self.template.condition(resource["Condition"]):
                continue
            if resource["Type"] != "AWS::KMS::Key":
                raise NotImplementedError(f"the local stack cannot retire {resource['Type']} ({logical_id})")
            self.client("kms").schedule_key_deletion(
                KeyId=self.physical.pop(logical_id)["KeyId"], PendingWindowInDays=7
            )

    # ------------------------------------------------------------------ creators
    def _create(self, logical_id: str, resource: dict[str, Any]) -> dict[str, str]:
        kind = resource["Type"]
        props = resource.get("Properties", {})
        arn_prefix = f"arn:{PARTITION}"
        if kind == "AWS::DynamoDB::Table":
            name = self.template.resolve(props.get("TableName")) or self.name_for(logical_id)
            return self._table(name, props) | {"Arn": f"{arn_prefix}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"}
        if kind == "AWS::KMS::Key":
            key = self.client("kms").create_key(
                Description=props.get("Description", logical_id),
                Policy=json.dumps(self.template.resolve(props.get("KeyPolicy", {}))),
                KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
                KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
            )["KeyMetadata"]
            return {"Ref": key["KeyId"], "Arn": key["Arn"], "KeyId": key["KeyId"]}
        if kind == "AWS::KMS::Alias":
            name = self.template.resolve(props["AliasName"])
            self.client("kms").create_alias(AliasName=name, TargetKeyId=self.template.resolve(props["TargetKeyId"]))
            return {"Ref": name}
        if kind == "AWS::Events::EventBus":
            name = self.template.resolve(props.get("Name")) or self.name_for(logical_id)
            arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
            return {"Ref": name, "Arn": arn, "Name": name}
        if kind == "AWS::SQS::Queue":
            name = self.template.resolve(props.get("QueueName")) or self.name_for(logical_id)
            url = self.client("sqs").create_queue(QueueName=name, Attributes=self._queue_attributes(props))["QueueUrl"]
            return {"Ref": url, "Arn": f"{arn_prefix}:sqs:{REGION}:{ACCOUNT_ID}:{name}", "QueueName": name}
        if kind == "AWS::Events::Rule":
            return self._rule(logical_id, props)
        if kind == "AWS::IAM::Role":
            return self._role(logical_id, props)
        if kind == "AWS::IAM::RolePolicy":
            name = self.template.resolve(props["PolicyName"])
            self.client("iam").put_role_policy(
                RoleName=self.template.resolve(props["RoleName"]),
                PolicyName=name,
                PolicyDocument=json.dumps(self.template.resolve(props["PolicyDocument"])),
            )
            return {"Ref": name}
        if kind == "AWS::IAM::ManagedPolicy":
            # Created for real: a test can attach the worker policies to a role of its own.
            arn = self.client("iam").create_policy(
                PolicyName=self.template.resolve(props.get("ManagedPolicyName")) or self.name_for(logical_id),
                PolicyDocument=json.dumps(self.template.resolve(props["PolicyDocument"])),
                Description=str(props.get("Description", ""))[:1000],
            )["Policy"]["Arn"]
            return {"Ref": arn, "PolicyArn": arn}
        if kind == "AWS::Logs::LogGroup":
            return self._log_group(logical_id, props)
        if kind == "AWS::CloudWatch::Alarm":
            return self._alarm(logical_id, props)
        if kind == "AWS::ApiGateway::Account":
            # A region-wide setting of API Gateway's; the local API Gateway logs nothing through it.
            return {"Ref": logical_id}
        if kind == "AWS::Serverless::Api":
            return {"Ref": "local", "RootResourceId": "local"}
        if kind in ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion"):
            name = self.name_for(logical_id)
            return {"Ref": name, "Arn": f"{arn_prefix}:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"}
        raise NotImplementedError(f"the local stack cannot provision {kind} ({logical_id})")

    def _queue_attributes(self, props: dict[str, Any]) -> dict[str, str]:
        attributes: dict[str, str] = {
            key: str(self.template.resolve(props[key]))
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")
            if key in props
        }
        if redrive := props.get("RedrivePolicy"):
            attributes["RedrivePolicy"] = json.dumps(self.template.resolve(redrive))
        return attributes

    def _rule(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        """A rule with its targets; moto's EventBridge delivers to SQS targets itself."""
        events = self.client("events")
        name = self.template.resolve(props.get("Name")) or self.name_for(logical_id)
        bus = str(self.template.resolve(props.get("EventBusName", "default")))
        state = str(props.get("State", "ENABLED"))
        arn = events.put_rule(
            Name=name,
            EventBusName=bus,
            EventPattern=json.dumps(self.template.resolve(props["EventPattern"])),
            # moto knows ENABLED and DISABLED only; ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS is ENABLED.
            State="DISABLED" if state == "DISABLED" else "ENABLED",
        )["RuleArn"]
        targets = self.template.resolve(props.get("Targets", []))
        for target in targets:
            if ":sqs:" not in target["Arn"]:
                raise NotImplementedError(f"the local stack delivers rule targets to SQS only ({logical_id})")
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": t["Id"], "Arn": t["Arn"]} for t in targets])
        return {"Ref": name, "Arn": arn}

    def _log_group(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        logs = self.client("logs")
        name = self.template.resolve(props.get("LogGroupName")) or self.name_for(logical_id)
        tags = {t["Key"]: str(t["Value"]) for t in self.template.resolve(props.get("Tags", []))}
        logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
        if retention := props.get("RetentionInDays"):
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(self.template.resolve(retention)))
        return {"Ref": name, "Arn": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"}

    def _alarm(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        """The alarm as declared (moto's CloudWatch keeps it; it evaluates nothing)."""
        resolved = self.template.resolve(props)
        name = resolved.pop("AlarmName", None) or self.name_for(logical_id)
        for key in ("Period", "EvaluationPeriods"):
            resolved[key] = int(resolved[key])
        resolved["Threshold"] = float(resolved["Threshold"])
        self.client("cloudwatch").put_metric_alarm(AlarmName=name, **resolved)
        return {"Ref": name, "Arn": f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}"}

    def _table(self, name: str, props: dict[str, Any]) -> dict[str, str]:
        ddb = self.client("dynamodb")
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if gsis := props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = gsis
        ddb.create_table(**request)
        if ttl := props.get("TimeToLiveSpecification"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl["Enabled"]),
                },
            )
        return {"Ref": name}

    def _role(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        # A role's ARN follows from its name, so trust policies that name other roles resolve without
        # creating those first (the template's BrokerRole trusts the function roles).
        name = self.template.resolve(props.get("RoleName")) or self.name_for(logical_id)
        path = props.get("Path", "/")
        arn = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role{path}{name}"
        self.physical[logical_id] = {"Ref": name, "Arn": arn, "RoleId": name}
        iam = self.client("iam")
        iam.create_role(
            RoleName=name,
            Path=path,
            AssumeRolePolicyDocument=json.dumps(self.template.resolve(props["AssumeRolePolicyDocument"])),
            MaxSessionDuration=int(props.get("MaxSessionDuration", 3600)),
        )
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(self.template.resolve(policy["PolicyDocument"])),
            )
        return self.physical[logical_id]
