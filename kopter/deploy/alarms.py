"""CloudWatch alarms on every queue: a message parked in its DLQ, and a message waiting (or
running) longer than it should. They notify an SNS topic of the stack's."""

from __future__ import annotations

from typing import Any

from kopter import queues
from kopter.deploy.cfn import Template, equals, logical, not_, ref, skip, sub


def _alarm(queue: str, metric: str, threshold: Any, description: str) -> dict[str, Any]:
    return {
        "AlarmDescription": description,
        "Namespace": "AWS/SQS",
        "MetricName": metric,
        "Dimensions": [{"Name": "QueueName", "Value": sub("${Prefix}" + queue)}],
        "Statistic": "Maximum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        # An idle queue publishes nothing for a while: that is no message, not a fault.
        "TreatMissingData": "notBreaching",
        "AlarmActions": [ref("AlarmTopic")],
        "OKActions": [ref("AlarmTopic")],
    }


def add(t: Template) -> None:
    t.parameter(
        "OldestMessageAlarmSeconds",
        Type="Number",
        Default=1800,
        MinValue=60,
        Description="Alarm when a queue's oldest message is this old (waiting or running)",
    )
    t.parameter(
        "AlarmEmail",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$",
        Description="An address the alarms are mailed to (empty: subscribe to AlarmTopicArn)",
    )
    t.condition("HasAlarmEmail", not_(equals(ref("AlarmEmail"), "")))
    t.add(
        "AlarmTopic",
        "AWS::SNS::Topic",
        {"DisplayName": sub("kopter ${Prefix} alarms")},
        metadata=skip(
            (
                "CKV_AWS_26",
                "CloudWatch cannot publish to a topic under SNS's AWS-managed key, and alarms "
                "carry no customer data",
            ),
        ),
    )
    t.add(
        "AlarmSubscription",
        "AWS::SNS::Subscription",
        {"TopicArn": ref("AlarmTopic"), "Protocol": "email", "Endpoint": ref("AlarmEmail")},
        condition="HasAlarmEmail",
    )
    for queue in queues.ALL_QUEUES:
        name = logical(queue)
        t.add(
            name + "DlqAlarm",
            "AWS::CloudWatch::Alarm",
            {
                "AlarmName": sub("${Prefix}" + queue + queues.DLQ_SUFFIX + "-parked"),
                **_alarm(
                    queue + queues.DLQ_SUFFIX,
                    "ApproximateNumberOfMessagesVisible",
                    1,
                    f"a message was parked in {queue}'s DLQ: `kopter dlq show {queue}`",
                ),
            },
        )
        t.add(
            name + "AgeAlarm",
            "AWS::CloudWatch::Alarm",
            {
                "AlarmName": sub("${Prefix}" + queue + "-oldest"),
                **_alarm(
                    queue,
                    "ApproximateAgeOfOldestMessage",
                    ref("OldestMessageAlarmSeconds"),
                    f"{queue}'s oldest message waited past the threshold: `kopter status`",
                ),
            },
        )
    t.output("AlarmTopicArn", ref("AlarmTopic"), "Subscribe here to hear of the alarms")
