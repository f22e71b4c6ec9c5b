"""Where kopter keeps things: the SQS queues with their DLQs, the DynamoDB tables, and Redis
(ElastiCache). Queues and tables come from the definitions `kopter bootstrap` makes them from
(``kopter.queues``, ``kopter.tables.definitions``), named by the ``Prefix`` parameter as every
process names them.

The raw queue's policy is not here: kopter writes it from the accounts table as customers
register and leave (``kopter.rawqueue``), and a policy owned by the stack would be put back to
the template's on the next update that touched it, cutting every customer's notifications off.
"""

from __future__ import annotations

from typing import Any

from kopter import queues
from kopter.deploy import scaling
from kopter.deploy.cfn import Template, get_att, logical, ref, skip, sub
from kopter.tables.definitions import TableDefinition, definitions

REDIS_PORT = 6379
SECRET_KEY = (
    "CKV_AWS_149",
    "encrypted with Secrets Manager's own key: only this account's roles read it",
)
QUEUE_KEY = (
    "CKV_AWS_27",
    "encrypted at rest by SQS itself (SqsManagedSseEnabled); a KMS key would keep S3 and SNS "
    "from delivering to the raw queue unless it were a key of the operator's",
)
TABLE_KEY = (
    "CKV_AWS_119",
    "encrypted at rest with DynamoDB's own key (its default); a customer managed key costs per "
    "request and its key policy is the operator's to own",
)


def queue_name(queue: str) -> dict[str, Any]:
    return sub("${Prefix}" + queue)


def add_queues(t: Template) -> None:
    for queue in queues.ALL_QUEUES:
        dlq = logical(queue) + "Dlq"
        t.add(
            dlq,
            "AWS::SQS::Queue",
            {
                "QueueName": queue_name(queue + queues.DLQ_SUFFIX),
                **queues.dlq_attributes(),
            },
            metadata=skip(QUEUE_KEY),
        )
        t.add(
            logical(queue) + "Queue",
            "AWS::SQS::Queue",
            {
                "QueueName": queue_name(queue),
                **queues.queue_attributes(
                    ref("VisibilityTimeout"), get_att(dlq, "Arn"), ref("MaxReceiveCount")
                ),
            },
            metadata=skip(QUEUE_KEY),
        )


def add_tables(t: Template) -> None:
    tables = definitions()
    modes = {table.billing_mode for table in tables}
    if len(modes) != 1:
        raise ValueError(f"the tables differ in billing mode ({', '.join(sorted(modes))})")
    scaling.add_table_parameters(t, modes.pop())
    for table in tables:
        resource = logical(table.base_name) + "Table"
        t.add(
            resource,
            "AWS::DynamoDB::Table",
            table_properties(table),
            retain=True,
            metadata=skip(TABLE_KEY),
        )
        scaling.add_table_scaling(t, table, resource)


def table_properties(table: TableDefinition) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "TableName": sub("${Prefix}" + table.base_name),
        "KeySchema": table.key_schema,
        "AttributeDefinitions": table.attribute_definitions,
        "BillingMode": ref("TableBillingMode"),
        "ProvisionedThroughput": scaling.throughput(),
        "PointInTimeRecoverySpecification": {
            "PointInTimeRecoveryEnabled": table.point_in_time_recovery
        },
        # Deleting a table of customers' data takes turning this off first.
        "DeletionProtectionEnabled": True,
    }
    if table.indexes:
        properties["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": index.key_schema,
                "Projection": index.projection,
                "ProvisionedThroughput": scaling.throughput(),
            }
            for index in table.indexes
        ]
    if table.ttl_attribute:
        properties["TimeToLiveSpecification"] = {
            "AttributeName": table.ttl_attribute,
            "Enabled": True,
        }
    return properties


def add_redis(t: Template) -> None:
    t.parameter(
        "RedisNodeType",
        Type="String",
        Default="cache.t4g.small",
        AllowedPattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$",
        Description="ElastiCache node type of Redis (a primary and a replica in another zone)",
    )
    t.add(
        "RedisSubnetGroup",
        "AWS::ElastiCache::SubnetGroup",
        {
            "Description": sub("kopter ${Prefix}: Redis in the private subnets"),
            "SubnetIds": ref("PrivateSubnetIds"),
        },
    )
    t.add(
        "RedisAuthToken",
        "AWS::SecretsManager::Secret",
        {
            "Description": sub("kopter ${Prefix}: Redis AUTH token"),
            "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True},
        },
        metadata=skip(SECRET_KEY),
    )
    token = "{{resolve:secretsmanager:${RedisAuthToken}}}"
    t.add(
        "Redis",
        "AWS::ElastiCache::ReplicationGroup",
        {
            "ReplicationGroupDescription": sub("kopter ${Prefix}: results, beat, caches"),
            "Engine": "redis",
            "EngineVersion": "7.1",
            "CacheNodeType": ref("RedisNodeType"),
            "NumCacheClusters": 2,
            "AutomaticFailoverEnabled": True,
            "MultiAZEnabled": True,
            "Port": REDIS_PORT,
            "TransitEncryptionEnabled": True,
            "AtRestEncryptionEnabled": True,
            "AuthToken": sub(token),
            "CacheSubnetGroupName": ref("RedisSubnetGroup"),
            "SecurityGroupIds": [ref("RedisSecurityGroup")],
            "AutoMinorVersionUpgrade": True,
            "SnapshotRetentionLimit": 1,
        },
    )
    # The URL every process reads as KOPTER_REDIS_URL: it holds the token, so it is a secret.
    t.add(
        "RedisUrl",
        "AWS::SecretsManager::Secret",
        {
            "Description": sub("kopter ${Prefix}: KOPTER_REDIS_URL"),
            "SecretString": {
                "Fn::Sub": [
                    f"rediss://:{token}@${{Host}}:${{Port}}/0?ssl_cert_reqs=required",
                    {
                        "Host": get_att("Redis", "PrimaryEndPoint.Address"),
                        "Port": get_att("Redis", "PrimaryEndPoint.Port"),
                    },
                ]
            },
        },
        metadata=skip(SECRET_KEY),
    )
