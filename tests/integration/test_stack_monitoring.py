"""The embedded stack provisions the template's log groups and alarms as declared (they are derived from
template.yaml like every other resource)."""

from __future__ import annotations

from runcreds_dev.stack import EmbeddedStack


def test_every_log_group_keeps_its_retention_and_every_alarm_exists(stack: EmbeddedStack) -> None:
    groups = stack.template.of_type("AWS::Logs::LogGroup")
    retention = int(stack.template.parameters["LogRetentionDays"])
    described = stack.client("logs").describe_log_groups(logGroupNamePrefix=stack.template.stack_name)["logGroups"]
    by_name = {g["logGroupName"]: g for g in described}
    for logical_id in groups:
        assert by_name[stack.template.resolve({"Ref": logical_id})]["retentionInDays"] == retention

    declared = stack.template.of_type("AWS::CloudWatch::Alarm")
    alarms = stack.client("cloudwatch").describe_alarms(AlarmNamePrefix=stack.template.stack_name)["MetricAlarms"]
    assert {a["AlarmName"] for a in alarms} == {stack.template.resolve({"Ref": k}) for k in declared}
    vend_dlq = next(a for a in alarms if a["AlarmName"].endswith("VendDeadLetterQueueAlarm"))
    assert vend_dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": stack.template.resolve({"Fn::GetAtt": ["VendDeadLetterQueue", "QueueName"]})}
    ]
    assert vend_dlq["AlarmActions"] == []  # AlarmTopicArn is empty by default
