"""kopter's own monthly AWS bill for N connected accounts (`kopter deploy cost`): the work N
accounts make (``Workload``, the assumptions that are not kopter's), times what each unit of it
asks of AWS (``kopter.deploy.usage``, counted), at AWS's list prices (``kopter.deploy.prices``),
on the fleet the stack runs: the template's own task sizes, counts and parameters, the workers
scaled by ``kopter.deploy.scaling``'s arithmetic. Beside it, the same work on Lambda.

Plain data in, plain data out: the template is given (`kopter deploy template` builds it), so
what is billed is what the stack holds, and cannot drift from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kopter.cloudtrail.ingest import MARKER_DAYS
from kopter.costs.aggregator import POINT_DAYS
from kopter.deploy import prices, usage
from kopter.deploy.groups import WorkerGroup
from kopter.deploy.prices import Price
from kopter.deploy.scaling import tasks as scaled_tasks
from kopter.deploy.workload import DAYS, HOURS, SECONDS, Work, Workload, work
from kopter.ec2.backup import HISTORY
from kopter.ec2.events import EVENT_DAYS
from kopter.errors import Refused

GB = 1e9
# Container Insights' metrics of a Fargate task (docs.aws.amazon.com, CloudWatch Application
# Insights' list for ECS, the instance_* ones left out): published for the cluster and for each
# service.
INSIGHTS_METRICS = 16
V = usage.value


# --- the fleet --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    name: str
    vcpu: float
    memory_gb: float
    tasks: int
    why: str
    worker: bool = False


def _resolved(doc: dict[str, Any], value: Any) -> Any:
    """A property's value, a parameter's default where it refers to one."""
    if isinstance(value, dict) and "Ref" in value:
        return doc["Parameters"][value["Ref"]]["Default"]
    return value


def fleet(doc: dict[str, Any], groups: tuple[WorkerGroup, ...], done: Work) -> list[Service]:
    """Every ECS service of the template, its task size, and the tasks it runs for ``done``."""
    by_service = {g.logical + "Service": g for g in groups}
    out = []
    for name, resource in doc["Resources"].items():
        if resource["Type"] != "AWS::ECS::Service":
            continue
        properties = resource["Properties"]
        task = doc["Resources"][properties["TaskDefinition"]["Ref"]]["Properties"]
        vcpu = int(_resolved(doc, task["Cpu"])) / 1024
        memory = int(_resolved(doc, task["Memory"])) / 1024
        group = by_service.get(name)
        if group is None:
            count = int(_resolved(doc, properties["DesiredCount"]))
            out.append(Service(name, vcpu, memory, count, "DesiredCount"))
            continue
        count, why = _worker_tasks(doc, group, done)
        out.append(Service(name, vcpu, memory, count, why, worker=True))
    return out


def _worker_tasks(doc: dict[str, Any], g: WorkerGroup, done: Work) -> tuple[int, str]:
    """The tasks the group's scaling policy keeps for its queues' steady load (the template's
    parameters), and why; the most it runs is lifted when the load needs more."""
    p = {
        k: float(doc["Parameters"][g.logical + k]["Default"])
        for k in ("Processes", "LeastTasks", "MostTasks", "BacklogPerTask")
    }
    arrivals = sum(done.messages.get(q, 0.0) for q in g.queues) / SECONDS
    busy = sum(done.busy.get(q, 0.0) for q in g.queues) / SECONDS
    if arrivals == 0:
        return int(p["LeastTasks"]), "LeastTasks (no work)"
    count = scaled_tasks(
        arrivals,
        busy / arrivals,
        int(p["Processes"]),
        p["BacklogPerTask"],
        int(p["LeastTasks"]),
        10**9,
    )
    why = f"{arrivals:.3g} tasks/s x {busy / arrivals:.3g} s over {p['Processes']:g} processes"
    if count > p["MostTasks"]:
        why += f": raise {g.logical}MostTasks from {p['MostTasks']:g} to {count}"
    return count, why


# --- the bill ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float
    price: Price

    @property
    def usd(self) -> float:
        return self.quantity * self.price.usd


def bill(
    doc: dict[str, Any], groups: tuple[WorkerGroup, ...], accounts: int, w: Workload
) -> tuple[list[Service], list[Line]]:
    """The fleet and the month's lines for ``accounts`` accounts."""
    if accounts < 1:
        raise Refused(f"--accounts {accounts}: give a whole number of accounts, 1 or more")
    params = {k: v.get("Default") for k, v in doc["Parameters"].items()}
    if params["TableBillingMode"] != "PAY_PER_REQUEST":
        raise Refused("only on-demand tables (TableBillingMode PAY_PER_REQUEST) are costed")
    done = work(accounts, w)
    services = fleet(doc, groups, done)
    arm = params["ImageArchitecture"] == "ARM64"
    vcpu_price = prices.FARGATE_ARM_VCPU_HOUR if arm else prices.FARGATE_VCPU_HOUR
    gb_price = prices.FARGATE_ARM_GB_HOUR if arm else prices.FARGATE_GB_HOUR
    lines = [
        Line("Fargate", "vCPU-hours", sum(s.tasks * s.vcpu for s in services) * HOURS, vcpu_price),
        Line(
            "Fargate",
            "memory GB-hours",
            sum(s.tasks * s.memory_gb for s in services) * HOURS,
            gb_price,
        ),
        *_sqs(groups, services, done),
        *_dynamodb(params, done),
        *_edge(doc, params, done, w),
        *_cloudwatch(doc, params, services, done),
    ]
    secrets = [
        r
        for r in doc["Resources"].values()
        if r["Type"] == "AWS::SecretsManager::Secret" and _present(r, params)
    ]
    lines.append(Line("Secrets Manager", "secrets", len(secrets), prices.SECRET_MONTH))
    lines.append(
        Line(
            "Cognito", "monthly active users", done.tenants * w.users_per_tenant, prices.COGNITO_MAU
        )
    )
    return services, [line for line in lines if line.quantity]


def _present(resource: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether a resource is in the stack with the parameters' defaults (the only condition on
    what is billed here is the front)."""
    condition = resource.get("Condition")
    return condition is None or (condition == "UseApiGateway" and params["Front"] == "apigateway")


def _sqs(groups: tuple[WorkerGroup, ...], services: list[Service], done: Work) -> list[Line]:
    messages = sum(done.messages.values()) * V("requests_per_message")
    polled = 0.0  # queues a worker task polls while it waits (the ingest bridge's raw queue too)
    by_service = {s.name: s for s in services}
    for g in groups:
        queues = len(g.queues) + ("ingest" in g.queues)
        polled += by_service[g.logical + "Service"].tasks * queues
    polls = polled * V("polls_per_queue_second") * SECONDS
    return [
        _million(
            Line(
                "SQS",
                "requests (millions): messages sent, received, deleted",
                messages,
                prices.SQS_MILLION,
            )
        ),
        _million(
            Line(
                "SQS",
                "requests (millions): polls of idle queues, the most",
                polls,
                prices.SQS_MILLION,
            )
        ),
    ]


def _million(line: Line) -> Line:
    return Line(line.service, line.item, line.quantity / 1e6, line.price)


def storage_gb(done: Work, params: dict[str, Any]) -> float:
    """The tables' size once every retention has filled: each item kept its TTL's days (the
    audit log's and the snapshots' the stack's parameters)."""
    day = 1 / DAYS
    retention_days = float(params["AuditRetentionDays"])
    snapshot_days = float(params["BackupRetentionDays"]) + HISTORY.days
    kept = (
        done.records * day * V("bytes_per_record") * retention_days
        + done.files * day * V("bytes_per_file") * MARKER_DAYS
        + done.changes * day * V("bytes_per_change") * EVENT_DAYS
        + done.instances * V("bytes_per_instance")
        + done.accounts * 24 * V("bytes_per_point") * POINT_DAYS
        + done.snapshots * day * V("bytes_per_snapshot") * snapshot_days
        + done.tenants * V("bytes_per_digest") * retention_days
    )
    return kept / GB


def _dynamodb(params: dict[str, Any], done: Work) -> list[Line]:
    writes = (
        done.files * V("wru_per_file")
        + done.records * V("wru_per_record")
        + done.region_hours * V("wru_per_region_hour")
        + done.changes * V("wru_per_change")
        + done.account_aggregations * V("wru_per_account_aggregation")
        + done.backups * V("wru_per_backup_region")
        + done.snapshots * V("wru_per_snapshot")
        + done.audits * V("wru_per_tenant_audit_day")
        + HOURS * V("wru_per_pricing_hour")
    )
    reads = (
        done.files * V("rru_per_file")
        + done.records * V("rru_per_record")
        + done.region_hours * V("rru_per_region_hour")
        + done.instances * HOURS * V("rru_per_instance_hour")
        + done.account_aggregations * V("rru_per_account_aggregation")
        + done.backups * V("rru_per_backup_region")
        + done.snapshots * V("rru_per_snapshot")
        + done.audits * V("rru_per_tenant_audit_day")
        + done.records * usage.AUDITS_PER_DAY * V("rru_per_audited_record")
        + HOURS * V("rru_per_pricing_hour")
        + done.api_requests * V("rru_per_api_request")
    )
    size = storage_gb(done, params)
    return [
        _million(
            Line(
                "DynamoDB", "write request units (millions)", writes, prices.DYNAMODB_WRITE_MILLION
            )
        ),
        _million(
            Line("DynamoDB", "read request units (millions)", reads, prices.DYNAMODB_READ_MILLION)
        ),
        Line(
            "DynamoDB",
            "GB-months stored, once retention has filled",
            size,
            prices.DYNAMODB_GB_MONTH,
        ),
        Line(
            "DynamoDB", "GB-months of point-in-time recovery", size, prices.DYNAMODB_PITR_GB_MONTH
        ),
    ]


def _edge(doc: dict[str, Any], params: dict[str, Any], done: Work, w: Workload) -> list[Line]:
    redis = doc["Resources"]["Redis"]["Properties"]
    node = _resolved(doc, redis["CacheNodeType"])
    if node not in prices.ELASTICACHE_NODE_HOUR.unit:
        raise Refused(f"no price for ElastiCache's {node}: add it to kopter/deploy/prices.py")
    requests_per_hour = done.api_requests / HOURS
    processed_gb = requests_per_hour * V("api_bytes_per_request") / GB
    # An LCU is 25 new connections a second or 1 GB processed an hour (the larger is billed);
    # each request is counted as a new connection, the most it can be.
    lcu = max(requests_per_hour / 3600 / 25, processed_gb)
    web_requests = done.visits * V("web_files")
    lines = [
        Line(
            "ElastiCache",
            f"node-hours ({redis['NumCacheClusters']} nodes)",
            redis["NumCacheClusters"] * HOURS,
            prices.ELASTICACHE_NODE_HOUR,
        ),
        Line("Load balancer", "ALB-hours", HOURS, prices.ALB_HOUR),
        Line("Load balancer", "LCU-hours", lcu * HOURS, prices.ALB_LCU_HOUR),
        Line(
            "S3",
            "PUT requests (thousands): the web app deployed",
            w.deploys_per_month * V("web_files") / 1000,
            prices.S3_PUT_THOUSAND,
        ),
        Line(
            "S3",
            "GET requests (thousands): CloudFront's, each a miss (the most)",
            web_requests / 1000,
            prices.S3_GET_THOUSAND,
        ),
        Line(
            "CloudFront",
            "GB out",
            done.visits * V("web_bytes_per_visit") / GB,
            prices.CLOUDFRONT_GB,
        ),
        Line(
            "CloudFront",
            "HTTPS requests (ten thousands)",
            web_requests / 1e4,
            prices.CLOUDFRONT_HTTPS_TEN_THOUSAND,
        ),
    ]
    if params["Front"] == "apigateway":
        lines.append(
            _million(
                Line(
                    "API Gateway",
                    "REST API calls (millions)",
                    done.api_requests,
                    prices.API_GATEWAY_REST_MILLION,
                )
            )
        )
    return lines


def _cloudwatch(
    doc: dict[str, Any], params: dict[str, Any], services: list[Service], done: Work
) -> list[Line]:
    alarm_metrics = 0
    for resource in doc["Resources"].values():
        if resource["Type"] == "AWS::CloudWatch::Alarm" and _present(resource, params):
            alarm_metrics += 1
        spec = resource["Properties"].get("TargetTrackingScalingPolicyConfiguration", {})
        custom = spec.get("CustomizedMetricSpecification", {}).get("Metrics", [])
        if resource["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy" and custom:
            # Target tracking makes two alarms (out and in), each on every metric of the math.
            alarm_metrics += 2 * sum("MetricStat" in m for m in custom)
    insights = INSIGHTS_METRICS * (1 + len(services)) if _insights(doc) else 0
    tasks = sum(done.messages.values())
    ingested = (
        tasks * V("log_bytes_per_task") + done.api_requests * V("api_log_bytes_per_request")
    ) / GB
    kept_months = float(params["LogRetentionDays"]) / DAYS
    return [
        Line(
            "CloudWatch",
            "alarm metrics (the queues' alarms, the scaling's)",
            alarm_metrics,
            prices.CLOUDWATCH_ALARM_METRIC_MONTH,
        ),
        Line("CloudWatch", "Container Insights metrics", insights, prices.CLOUDWATCH_METRIC_MONTH),
        Line("CloudWatch", "GB of logs ingested", ingested, prices.CLOUDWATCH_LOGS_GB),
        Line(
            "CloudWatch",
            "GB-months of logs kept (uncompressed: the most)",
            ingested * kept_months,
            prices.CLOUDWATCH_LOGS_GB_MONTH,
        ),
    ]


def _insights(doc: dict[str, Any]) -> bool:
    return any(
        s == {"Name": "containerInsights", "Value": "enabled"}
        for r in doc["Resources"].values()
        if r["Type"] == "AWS::ECS::Cluster"
        for s in r["Properties"].get("ClusterSettings", [])
    )


def lambda_lines(
    services: list[Service], lines: list[Line], done: Work, w: Workload
) -> tuple[list[Line], list[Line]]:
    """The workers' part of the bill, and the same tasks as Lambda invocations (one a message,
    for the time the benchmarks measured, with ``lambda_memory_mb``)."""
    workers = [s for s in services if s.worker]
    ours = [
        Line(
            "Fargate",
            "workers' vCPU-hours",
            sum(s.tasks * s.vcpu for s in workers) * HOURS,
            lines[0].price,
        ),
        Line(
            "Fargate",
            "workers' memory GB-hours",
            sum(s.tasks * s.memory_gb for s in workers) * HOURS,
            lines[1].price,
        ),
        *[line for line in lines if "polls" in line.item],
    ]
    invocations = sum(done.messages.values())
    gb_seconds = sum(done.busy.values()) * w.lambda_memory_mb / 1024
    theirs = [
        _million(Line("Lambda", "requests (millions)", invocations, prices.LAMBDA_MILLION)),
        Line(
            "Lambda", f"GB-seconds ({w.lambda_memory_mb:g} MB)", gb_seconds, prices.LAMBDA_GB_SECOND
        ),
    ]
    return ours, theirs
