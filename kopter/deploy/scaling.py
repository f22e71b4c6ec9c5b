"""Each worker service scaled on its queues' backlog per task, and provisioned tables on their
use (Application Auto Scaling).

The backlog counts the messages in flight as well as the visible ones: a worker holds what it
runs invisible, so scaling on visible messages alone sees an empty queue while every task is
busy and removes tasks that are working (aws-cdk#20706, keda#1663). Delayed messages are left
out: they are not due (the describer's spread, a long ``countdown``), and counting them would add
tasks that wait for them; each counts once it is visible.
"""

from __future__ import annotations

import math
from typing import Any

from kopter.deploy.cfn import Template, if_, logical, ref, sub
from kopter.deploy.groups import WorkerGroup
from kopter.tables.definitions import TableDefinition

# Seconds between a scaling action and the next one in that direction: out fast, in slowly.
SCALE_OUT_COOLDOWN = 60
SCALE_IN_COOLDOWN = 300


def backlog_target(processes: int, task_seconds: float, wait_seconds: float) -> float:
    """The backlog per task the policy keeps: a task runs ``processes`` messages at once, so a
    backlog of B per task is done in about ``B * task_seconds / processes`` seconds."""
    return processes * wait_seconds / task_seconds


def tasks(
    arrivals_per_second: float,
    task_seconds: float,
    processes: int,
    target: float,
    least: int,
    most: int,
) -> int:
    """How many tasks the policy runs for a steady load: ``arrivals_per_second * task_seconds``
    messages are in flight at any moment (Little's law). A task holds at most ``processes`` of
    them (one prefetched message a process), so below that target the policy spreads them
    ``target`` a task, and above it the tasks are full and the rest wait visible until the
    backlog per task is the target."""
    in_flight = arrivals_per_second * task_seconds
    needed = math.ceil(round(in_flight / min(target, processes), 9))
    return max(least, min(most, needed))


def backlog_metrics(group: WorkerGroup, service: dict[str, Any]) -> list[dict[str, Any]]:
    """The metric math of one group: its queues' visible and in-flight messages over its
    running tasks (Container Insights' RunningTaskCount; the backlog itself while none runs)."""
    queries: list[dict[str, Any]] = []
    terms = []
    for i, queue in enumerate(group.queues):
        for key, metric in (
            ("v", "ApproximateNumberOfMessagesVisible"),
            ("f", "ApproximateNumberOfMessagesNotVisible"),
        ):
            queries.append(
                _stat(
                    f"{key}{i}",
                    "AWS/SQS",
                    metric,
                    [{"Name": "QueueName", "Value": sub("${Prefix}" + queue)}],
                )
            )
            terms.append(f"{key}{i}")
    queries.append(
        _stat(
            "tasks",
            "ECS/ContainerInsights",
            "RunningTaskCount",
            [
                {"Name": "ClusterName", "Value": ref("Cluster")},
                {"Name": "ServiceName", "Value": service},
            ],
        )
    )
    backlog = "+".join(terms)
    queries.append(
        {
            "Id": "backlog",
            "Label": f"backlog per task of {group.name}",
            "Expression": f"IF(tasks > 0, ({backlog}) / tasks, {backlog})",
            "ReturnData": True,
        }
    )
    return queries


def _stat(id_: str, namespace: str, name: str, dimensions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Id": id_,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dimensions},
            "Stat": "Average",
        },
        "ReturnData": False,
    }


def add_worker_scaling(t: Template, group: WorkerGroup) -> None:
    service = group.logical + "Service"
    name = {"Fn::GetAtt": [service, "Name"]}
    target = t.add(
        group.logical + "Scaling",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "ecs",
            "ScalableDimension": "ecs:service:DesiredCount",
            "ResourceId": {"Fn::Join": ["/", ["service", ref("Cluster"), name]]},
            "MinCapacity": ref(group.logical + "LeastTasks"),
            "MaxCapacity": ref(group.logical + "MostTasks"),
        },
    )
    t.add(
        group.logical + "ScalingPolicy",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyName": sub("${AWS::StackName}-" + group.name + "-backlog"),
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": target,
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": ref(group.logical + "BacklogPerTask"),
                "ScaleOutCooldown": SCALE_OUT_COOLDOWN,
                "ScaleInCooldown": SCALE_IN_COOLDOWN,
                "CustomizedMetricSpecification": {"Metrics": backlog_metrics(group, name)},
            },
        },
    )


def add_table_parameters(t: Template, billing_mode: str) -> None:
    """``billing_mode``: the tables' own (their models'), the parameter's default."""
    t.parameter(
        "TableBillingMode",
        Type="String",
        Default=billing_mode,
        AllowedValues=["PAY_PER_REQUEST", "PROVISIONED"],
        Description="DynamoDB capacity: on demand, or provisioned and scaled on its use",
    )
    t.parameter(
        "TableLeastCapacity",
        Type="Number",
        Default=5,
        MinValue=1,
        Description="PROVISIONED: the least read and write units of each table and index",
    )
    t.parameter(
        "TableMostCapacity",
        Type="Number",
        Default=200,
        MinValue=1,
        Description="PROVISIONED: the most read and write units of each table and index",
    )
    t.parameter(
        "TableTargetUtilization",
        Type="Number",
        Default=70,
        MinValue=20,
        MaxValue=90,
        Description="PROVISIONED: the share of provisioned units in use the scaling keeps",
    )
    t.condition("Provisioned", {"Fn::Equals": [ref("TableBillingMode"), "PROVISIONED"]})


def throughput() -> dict[str, Any]:
    """A table's or index's ProvisionedThroughput: the least capacity, when provisioned."""
    least = ref("TableLeastCapacity")
    return if_("Provisioned", {"ReadCapacityUnits": least, "WriteCapacityUnits": least})


def add_table_scaling(t: Template, table: TableDefinition, resource: str) -> None:
    scaled = [(resource, "table", sub("table/${Prefix}" + table.base_name))]
    scaled += [
        (
            resource + logical(index.name),
            "index",
            sub("table/${Prefix}" + table.base_name + "/index/" + index.name),
        )
        for index in table.indexes
    ]
    for name, kind, resource_id in scaled:
        for use in ("Read", "Write"):
            target = t.add(
                f"{name}{use}Scaling",
                "AWS::ApplicationAutoScaling::ScalableTarget",
                {
                    "ServiceNamespace": "dynamodb",
                    "ScalableDimension": f"dynamodb:{kind}:{use}CapacityUnits",
                    "ResourceId": resource_id,
                    "MinCapacity": ref("TableLeastCapacity"),
                    "MaxCapacity": ref("TableMostCapacity"),
                },
                condition="Provisioned",
                depends_on=[resource],
            )
            t.add(
                f"{name}{use}ScalingPolicy",
                "AWS::ApplicationAutoScaling::ScalingPolicy",
                {
                    "PolicyName": sub("${AWS::StackName}-" + f"{name}-{use.lower()}"),
                    "PolicyType": "TargetTrackingScaling",
                    "ScalingTargetId": target,
                    "TargetTrackingScalingPolicyConfiguration": {
                        "TargetValue": ref("TableTargetUtilization"),
                        "PredefinedMetricSpecification": {
                            "PredefinedMetricType": f"DynamoDB{use}CapacityUtilization"
                        },
                    },
                },
                condition="Provisioned",
            )


RATES = (0.1, 1, 5, 20)  # messages arriving a second, for the table in docs/deploying.md


def table(groups: tuple[WorkerGroup, ...], rates: tuple[float, ...] = RATES) -> str:
    """How many tasks each worker service runs for steady arrivals, with the parameters'
    defaults (Markdown, as docs/deploying.md shows it)."""
    header = "| service | processes a task | task time | backlog per task | " + " | ".join(
        f"{rate:g}/s" for rate in rates
    )
    lines = [header + " |", "|---|---:|---:|---:|" + "---:|" * len(rates)]
    for g in groups:
        target = backlog_target(g.processes, g.task_seconds, g.wait_seconds)
        cells = []
        for rate in rates:
            count = tasks(rate, g.task_seconds, g.processes, target, g.least, g.most)
            full = rate * g.task_seconds > count * g.processes
            cells.append(f"{count} (most: falls behind)" if full else str(count))
        lines.append(
            f"| {g.logical}Service ({', '.join(g.queues)}) | {g.processes} | "
            f"{g.task_seconds:g} s | {target:g} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"
