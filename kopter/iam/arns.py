"""ARNs of kopter's own resources, named by the deployment's account, region and prefix."""

from __future__ import annotations

from kopter import queues
from kopter.errors import ConfigError
from kopter.settings import Settings


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def kopter_account(settings: Settings) -> str:
    if not settings.aws_account_id:
        raise ConfigError(
            "set KOPTER_AWS_ACCOUNT_ID to kopter's own AWS account id: policies name it"
        )
    return settings.aws_account_id


def queue_arn(settings: Settings, queue: str) -> str:
    """The ARN of one of kopter's SQS queues (``queue`` as ``-Q`` names it, or its DLQ)."""
    name = queues.sqs_name(settings, queue)
    return (
        f"arn:{partition(settings.region)}:sqs:{settings.region}:{kopter_account(settings)}:{name}"
    )


def raw_queue_arn(settings: Settings) -> str:
    return queue_arn(settings, queues.RAW_QUEUES[0])
