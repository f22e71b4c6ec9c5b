"""Least-privilege policies for kopter's own processes (`kopter iam ROLE`).

Every resource is named by the deployment's account, region and prefix (queues, their DLQs,
tables and their indexes); ``*`` appears only for actions AWS grants on no narrower resource
(CloudWatch's GetMetricData). Customer roles may be assumed only by their kopter name, and only
by the processes that reach customer accounts. A test records what each kind of process sends
to AWS and proves every request allowed by its role's policy, and every statement needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kopter import queues
from kopter.iam import arns, customer
from kopter.settings import Settings
from kopter.tables import ALL_MODELS, base_name

ROLES = ("worker", "beat", "api", "flower", "operator")

# What a consumer of a queue does to it; what it does to its DLQ (park a message it cannot run,
# and, for the raw queue's bridge, one of no known shape).
CONSUME = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
]
SEND = ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
TABLE_READ = [
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:DescribeTable",
]
TABLE_WRITE = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
]
# Work that reads or writes in customers' accounts: only these queues' workers assume roles.
CUSTOMER_QUEUES = frozenset({"ingest", "describer", "backup"})
# Tables the read API serves, and the items it changes (a notification marked read, the
# tenant's detection rules added, turned on and off, its channels added and removed).
API_TABLES = (
    "Tenants",
    "AwsAccounts",
    "AuditLogEvents",
    "AuditDigests",
    "Ec2Events",
    "Ec2Snapshots",
    "Ec2Prices",
    "PriceGraphData",
    "FrontendNotifications",
    "Findings",
    "DetectionRules",
    "Channels",
)


def table_names() -> list[str]:
    """kopter's table names, without the prefix."""
    return [base_name(model) for model in ALL_MODELS]


def _table_arns(settings: Settings, names: Iterable[str]) -> list[str]:
    base = f"arn:{arns.partition(settings.region)}:dynamodb:{settings.region}"
    account = arns.kopter_account(settings)
    found = []
    for name in names:
        full = settings.prefix + name
        found += [f"{base}:{account}:table/{full}", f"{base}:{account}:table/{full}/index/*"]
    return found


def _all_tables(settings: Settings) -> list[str]:
    return _table_arns(settings, table_names())


def _queues(settings: Settings, names: Iterable[str], dlq: bool = False) -> list[str]:
    suffix = queues.DLQ_SUFFIX if dlq else ""
    return [arns.queue_arn(settings, f"{name}{suffix}") for name in names]


def _statement(sid: str, actions: list[str], resources: list[str] | str) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": resources}


def _list_queues() -> dict[str, Any]:
    # kombu lists the queues under the prefix to learn their URLs; AWS grants ListQueues on
    # `*` or not at all (it names no resource).
    return _statement("ListQueues", ["sqs:ListQueues"], "*")


def customer_roles(settings: Settings) -> dict[str, Any]:
    return _statement(
        "AssumeCustomerRoles",
        ["sts:AssumeRole"],
        f"arn:{arns.partition(settings.region)}:iam::*:role/{customer.ROLE_NAME}",
    )


def worker(settings: Settings, consumed: Iterable[str]) -> dict[str, Any]:
    consumed = list(dict.fromkeys(consumed))
    unknown = sorted(set(consumed) - set(queues.WORK_QUEUES))
    if unknown:
        raise ValueError(f"not kopter queues: {', '.join(unknown)}")
    consumes = list(consumed)
    if "ingest" in consumed:  # the worker on `ingest` also runs the raw queue's bridge
        consumes += list(queues.RAW_QUEUES)
    statements = [
        _statement("ConsumeItsQueues", CONSUME, _queues(settings, consumes)),
        _statement("ParkPoison", SEND, _queues(settings, consumes, dlq=True)),
        # A task enqueues others (fan-outs, chords, notifications) on any work queue.
        _statement("SendTasks", SEND, _queues(settings, queues.WORK_QUEUES)),
        _list_queues(),
        _statement("Tables", TABLE_READ + TABLE_WRITE + ["dynamodb:Scan"], _all_tables(settings)),
    ]
    if CUSTOMER_QUEUES & set(consumed):
        statements.append(customer_roles(settings))
    if settings.notifications_topic_arn and "notifications" in consumed:
        statements.append(
            _statement("PublishNotifications", ["sns:Publish"], [settings.notifications_topic_arn])
        )
    if settings.channels_email_from and "deliveries" in consumed:
        statements.append(_send_email(settings, settings.channels_email_from))
    return _policy(statements)


def _send_email(settings: Settings, sender: str) -> dict[str, Any]:
    """SES authorizes a send on the identity it sends as, the address or its domain, whichever
    the operator verified: both, and only as the configured sender."""
    base = f"arn:{arns.partition(settings.region)}:ses:{settings.region}"
    account = arns.kopter_account(settings)
    identities = [f"{base}:{account}:identity/{sender}"]
    identities.append(f"{base}:{account}:identity/{sender.rsplit('@', 1)[1]}")
    statement = _statement("SendEmail", ["ses:SendEmail"], identities)
    statement["Condition"] = {"StringEquals": {"ses:FromAddress": sender}}
    return statement


def beat(settings: Settings) -> dict[str, Any]:
    """Beat only sends the schedule's tasks (its lock and schedule live in Redis)."""
    return _policy(
        [_statement("SendTasks", SEND, _queues(settings, queues.WORK_QUEUES)), _list_queues()]
    )


def api(settings: Settings) -> dict[str, Any]:
    """Reads tenant tables by key and query (never Scan); marks a notification read; adds the
    tenant's own detection rules and turns rules on and off for it; adds and removes the tenant's
    channels."""
    return _policy(
        [
            _statement("ReadTenantTables", TABLE_READ, _table_arns(settings, API_TABLES)),
            _statement(
                "MarkNotificationsRead",
                ["dynamodb:UpdateItem"],
                _table_arns(settings, ["FrontendNotifications"])[:1],
            ),
            _statement(
                "ManageRules",
                ["dynamodb:PutItem", "dynamodb:UpdateItem"],
                _table_arns(settings, ["DetectionRules"])[:1],
            ),
            _statement(
                "ManageChannels",
                ["dynamodb:PutItem", "dynamodb:DeleteItem"],
                _table_arns(settings, ["Channels"])[:1],
            ),
        ]
    )


def _every_queue(settings: Settings) -> list[str]:
    return _queues(settings, queues.ALL_QUEUES) + _queues(settings, queues.ALL_QUEUES, dlq=True)


def _oldest_message_age() -> dict[str, Any]:
    # GetMetricData names no resource: AWS grants it on `*` or not at all.
    return _statement("OldestMessageAge", ["cloudwatch:GetMetricData"], "*")


def flower(settings: Settings) -> dict[str, Any]:
    """Queue depths for /metrics, and tasks sent from its UI."""
    return _policy(
        [
            _statement(
                "QueueDepths", ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"], _every_queue(settings)
            ),
            _oldest_message_age(),
            # Tasks sent from its UI go through kombu, as the command line's do.
            _statement("SendTasks", SEND, _queues(settings, queues.WORK_QUEUES)),
            _list_queues(),
        ]
    )


def operator(settings: Settings) -> dict[str, Any]:
    """The `kopter` command line: bootstrap, dead letters, registration and every listing,
    checks and inline ingest in customer accounts."""
    every = _every_queue(settings)
    return _policy(
        [
            _statement(
                "Bootstrap",
                [
                    "sqs:CreateQueue",
                    "sqs:SetQueueAttributes",
                    "dynamodb:CreateTable",
                    "dynamodb:UpdateTable",
                    "dynamodb:DescribeTimeToLive",
                    "dynamodb:UpdateTimeToLive",
                    "dynamodb:DescribeContinuousBackups",
                    "dynamodb:UpdateContinuousBackups",
                ],
                every + _all_tables(settings),
            ),
            _oldest_message_age(),
            # Its queue depths too (`kopter status`): GetQueueAttributes is in CONSUME.
            _statement("DeadLetters", [*CONSUME, "sqs:SendMessage"], every),
            _list_queues(),
            _statement(
                "Tables", TABLE_READ + TABLE_WRITE + ["dynamodb:Scan"], _all_tables(settings)
            ),
            customer_roles(settings),
        ]
    )


def _policy(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def policy(settings: Settings, role: str, consumed: Iterable[str] = ()) -> dict[str, Any]:
    if role == "worker":
        return worker(settings, consumed or queues.WORK_QUEUES)
    return {"beat": beat, "api": api, "flower": flower, "operator": operator}[role](settings)
