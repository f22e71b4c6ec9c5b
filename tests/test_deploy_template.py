"""kopter's stack (`kopter deploy template`) deployed into moto's CloudFormation, over HTTP.

Every conditional part is in (API Gateway, provisioned tables, Flower's CIDR, the alarm mail, the
notifications topic). moto's CloudFormation lacks several of the stack's resource types: the
test names each, fails on a new one, and runs moto completed for them (``tests/support/
cfnmoto.py``: each made in moto's own backend from the template's properties), then reads
every kind back through moto's API. `kopter bootstrap` then finds every queue and table in
place, and what it still changes is exactly what moto's CloudFormation does not apply (TTL and
point-in-time recovery); the stack's queues and tables are those bootstrap makes under a fresh
prefix; each task role is `kopter iam`'s policy; `kopter deploy web` publishes the app with the
stack's outputs as its config.json.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto.cloudformation import parsing  # noqa: F401 (imports every model moto has)
from moto.core.common_models import CloudFormationModel
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from kopter import queues
from kopter.cli.root import cli
from kopter.deploy.stack import outputs
from kopter.devstack import LOCAL_AWS_ENV, free_port, spawn, wait_for_port
from kopter.errors import Refused
from kopter.iam import own
from kopter.settings import load
from kopter.tables.definitions import definitions
from tests.conftest import OUTPUT, TEST_ENV
from tests.support import cfnmoto
from tests.support.samples import ROOT

pytestmark = pytest.mark.long

STACK = "kopter"
VISIBLE, IN_FLIGHT = "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"
ACCOUNT = TEST_ENV["KOPTER_AWS_ACCOUNT_ID"]  # moto's own
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:kopter-notifications"
# The types of the stack moto's CloudFormation does not make (it warns and skips them).
LACKING = {
    "AWS::ApiGateway::Stage",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudWatch::Alarm",
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
    "AWS::Cognito::UserPoolDomain",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::SubnetGroup",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SecretsManager::Secret",
}


@dataclass
class Stack:
    env: dict[str, str]  # what a kopter process of this deployment reads
    template: dict[str, Any]
    parameters: dict[str, str]
    outputs: dict[str, str]
    physical: dict[str, str]  # logical id: physical id
    log: Any

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.env["KOPTER_AWS_ENDPOINT_URL"],
            aws_access_key_id=LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def settings(self, **env: str) -> Any:
        return load({**self.env, **env})

    def container(self, process: str) -> dict[str, Any]:
        task = self.client("ecs").describe_task_definition(
            taskDefinition=self.physical[process + "Task"]
        )
        [container] = task["taskDefinition"]["containerDefinitions"]
        return container


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    port = free_port()
    logs = OUTPUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    moto = spawn(
        "cfnmoto",
        cfnmoto.argv(port),
        {**os.environ, **LOCAL_AWS_ENV, "PYTHONPATH": str(ROOT)},
        logs,
        cwd=ROOT,
    )
    try:
        wait_for_port(moto, port)
        env = {
            **os.environ,
            "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "KOPTER_PREFIX": f"kd{secrets.token_hex(3)}-",
            "KOPTER_NOTIFICATIONS_TOPIC_ARN": TOPIC,
        }
        yield _deploy(env, logs / "cfnmoto.log")
    finally:
        moto.stop()


def _deploy(env: dict[str, str], log: Any) -> Stack:
    made = CliRunner().invoke(cli, ["deploy", "template", "--format", "json"])
    assert made.exit_code == 0, made.output
    template = json.loads(made.output)
    stack = Stack(env, template, {}, {}, {}, log)
    ec2 = stack.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(("us-east-1a", "us-east-1b", "us-east-1a", "us-east-1b"))
    ]
    certificate = stack.client("acm").request_certificate(DomainName="api.example.com")
    stack.parameters = {
        "Prefix": env["KOPTER_PREFIX"],
        # The tests' settings, so that the stack's queues and a bootstrap's can be compared.
        "VisibilityTimeout": env["KOPTER_VISIBILITY_TIMEOUT"],
        "MaxReceiveCount": env["KOPTER_MAX_RECEIVE_COUNT"],
        "NotificationsTopicArn": TOPIC,
        "VpcId": vpc,
        "PrivateSubnetIds": ",".join(subnets[:2]),
        "PublicSubnetIds": ",".join(subnets[2:]),
        "Image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/kopter:0.1.0",
        "ApiDomainName": "api.example.com",
        "ApiCertificateArn": certificate["CertificateArn"],
        "CognitoDomainPrefix": f"kopter-{secrets.token_hex(3)}",
        "Front": "apigateway",
        "TableBillingMode": "PROVISIONED",
        "FlowerAllowedCidr": "10.1.0.0/16",
        "AlarmEmail": "ops@example.com",
    }
    cloudformation = stack.client("cloudformation")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=made.output,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in stack.parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    [described] = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    stack.outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    resources = cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
    # moto gives an ingress rule no physical id.
    stack.physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in resources
        if "LogicalResourceId" in r  # not a resource moto skipped
    }
    return stack


def test_every_resource_is_made_and_none_skipped(stack):
    kinds = {r["Type"] for r in stack.template["Resources"].values()}
    stock = {
        model.cloudformation_type()
        for model in CloudFormationModel.__subclasses__()
        if model.__module__.startswith("moto.")
    }
    assert kinds - stock == LACKING
    assert cfnmoto.COMPLETED >= LACKING
    assert "No Moto CloudFormation support" not in stack.log.read_text()
    assert set(stack.physical) == set(stack.template["Resources"])


def test_bootstrap_then_changes_only_what_moto_did_not_apply(stack, kopter):
    changes = kopter.rows("bootstrap", env=stack.env)
    prefix = stack.env["KOPTER_PREFIX"]
    expected = {}
    for table in definitions():
        # moto's CloudFormation makes a table without its TimeToLiveSpecification and
        # PointInTimeRecoverySpecification; CloudFormation applies both, so on AWS none remain.
        done = (["TTL enabled"] if table.ttl_attribute else []) + ["point-in-time recovery enabled"]
        expected[prefix + table.base_name] = ("updated", ", ".join(done))
    found = {c["name"]: (c["action"], c["detail"]) for c in changes}
    assert {n: a for n, a in found.items() if a[0] != "unchanged"} == expected
    assert {c["kind"] for c in changes if c["action"] == "unchanged"} == {"queue", "policy"}
    assert len([c for c in changes if c["kind"] == "queue"]) == 2 * len(queues.ALL_QUEUES)


def _queue(sqs: Any, prefix: str, name: str) -> dict[str, Any]:
    url = sqs.get_queue_url(QueueName=prefix + name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    for changing in ("QueueArn", "CreatedTimestamp", "LastModifiedTimestamp"):
        attributes.pop(changing)
    if "RedrivePolicy" in attributes:
        policy = json.loads(attributes["RedrivePolicy"])
        dlq = policy["deadLetterTargetArn"].rsplit(":", 1)[1]
        assert dlq.startswith(prefix)
        attributes["RedrivePolicy"] = (dlq.removeprefix(prefix), int(policy["maxReceiveCount"]))
    return attributes


def _table(dynamodb: Any, name: str) -> dict[str, Any]:
    table = dynamodb.describe_table(TableName=name)["Table"]
    return {
        "keys": sorted(map(str, table["KeySchema"])),
        "attributes": sorted(map(str, table["AttributeDefinitions"])),
        "indexes": sorted(
            (i["IndexName"], sorted(map(str, i["KeySchema"])), i["Projection"])
            for i in table.get("GlobalSecondaryIndexes", [])
        ),
        "local indexes": table.get("LocalSecondaryIndexes"),
        "stream": table.get("StreamSpecification"),
        "ttl": dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
        "recovery": dynamodb.describe_continuous_backups(TableName=name)[
            "ContinuousBackupsDescription"
        ]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
    }


def test_the_stacks_queues_and_tables_are_bootstraps(stack, kopter):
    fresh = f"kb{secrets.token_hex(3)}-"
    kopter("bootstrap", env={**stack.env, "KOPTER_PREFIX": fresh})
    prefix = stack.env["KOPTER_PREFIX"]
    sqs, dynamodb = stack.client("sqs"), stack.client("dynamodb")
    for queue in queues.ALL_QUEUES:
        for name in (queue, queue + queues.DLQ_SUFFIX):
            assert _queue(sqs, prefix, name) == _queue(sqs, fresh, name), name
    for table in definitions():
        assert _table(dynamodb, prefix + table.base_name) == _table(
            dynamodb, fresh + table.base_name
        ), table.base_name
        # Only the capacity differs: a parameter of the stack's.
        billing = dynamodb.describe_table(TableName=prefix + table.base_name)["Table"]
        assert billing["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
        assert billing["DeletionProtectionEnabled"] is True


def test_each_task_role_is_kopter_iams_policy(stack):
    iam = stack.client("iam")
    settings = stack.settings()
    roles = {"Beat": ("beat", ()), "Api": ("api", ()), "Flower": ("flower", ())}
    roles["Operator"] = ("operator", ())
    for group in ("Realtime", "Jobs"):
        command = stack.container("Worker" + group)["command"]
        roles["Worker" + group] = ("worker", tuple(command[command.index("-Q") + 1].split(",")))
    ecs = stack.client("ecs")
    for process, (role, consumed) in roles.items():
        name = stack.physical[process + "Role"]
        document = _role_policy(iam, name)
        assert document == own.policy(settings, role, consumed), process
        task = ecs.describe_task_definition(taskDefinition=stack.physical[process + "Task"])
        assert task["taskDefinition"]["taskRoleArn"].endswith(f":role/{name}"), process
    realtime = _role_policy(iam, stack.physical["WorkerRealtimeRole"])
    assert any(s["Sid"] == "PublishNotifications" for s in realtime["Statement"])


def _role_policy(iam: Any, role: str) -> dict[str, Any]:
    document = iam.get_role_policy(RoleName=role, PolicyName="kopter")["PolicyDocument"]
    # moto keeps a policy that CloudFormation gave it as data, and answers its repr.
    return ast.literal_eval(document) if isinstance(document, str) else document


def test_workers_scale_on_their_queues_backlog_and_stop_as_fargate_stops(stack):
    autoscaling = stack.client("application-autoscaling")
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    cluster = stack.outputs["ClusterName"]
    prefix = stack.env["KOPTER_PREFIX"]
    ecs = stack.client("ecs")
    for group, least, most in (("Realtime", 1, 10), ("Jobs", 1, 10)):
        service = ecs.describe_services(
            cluster=cluster, services=[stack.physical[f"Worker{group}Service"]]
        )["services"][0]
        [target] = [t for t in targets if t["ResourceId"].endswith("/" + service["serviceName"])]
        assert target["ResourceId"] == f"service/{cluster}/{service['serviceName']}"
        assert (target["MinCapacity"], target["MaxCapacity"]) == (least, most)
        assert service["desiredCount"] == least
        container = stack.container(f"Worker{group}")
        consumed = container["command"][container["command"].index("-Q") + 1].split(",")
        [policy] = autoscaling.describe_scaling_policies(
            ServiceNamespace="ecs", ResourceId=target["ResourceId"]
        )["ScalingPolicies"]
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        watched = {
            (metric["MetricName"], metric["Dimensions"][0]["Value"])
            for query in tracking["CustomizedMetricSpecification"]["Metrics"]
            for metric in [query.get("MetricStat", {}).get("Metric", {})]
            if metric.get("Namespace") == "AWS/SQS"
        }
        assert watched == {
            (metric, prefix + queue) for queue in consumed for metric in (VISIBLE, IN_FLIGHT)
        }
        default = stack.template["Parameters"][f"Worker{group}BacklogPerTask"]["Default"]
        assert tracking["TargetValue"] == default
        # ECS's SIGTERM, then SIGKILL after Fargate's longest wait; the worker knows the wait.
        assert container["stopTimeout"] == 120
        assert {"name": "KOPTER_WORKER_STOP_TIMEOUT", "value": "120"} in container["environment"]
        assert container["healthCheck"]["command"] == ["CMD", "kopter", "health", "worker"]
    beat = ecs.describe_services(cluster=cluster, services=[stack.physical["BeatService"]])
    assert beat["services"][0]["desiredCount"] == 2  # one fires, one stands by
    tables = autoscaling.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"]
    wanted = {
        (f"table/{prefix}{t.base_name}" + suffix, f"dynamodb:{kind}:{use}CapacityUnits")
        for t in definitions()
        for suffix, kind in [("", "table")] + [(f"/index/{i.name}", "index") for i in t.indexes]
        for use in ("Read", "Write")
    }
    assert {(t["ResourceId"], t["ScalableDimension"]) for t in tables} == wanted


def test_alarms_watch_every_queue_and_its_dlq(stack):
    prefix = stack.env["KOPTER_PREFIX"]
    alarms = stack.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    topic = stack.outputs["AlarmTopicArn"]
    found = {
        a["AlarmName"]: (a["MetricName"], a["Dimensions"][0]["Value"], a["Threshold"])
        for a in alarms
        if a["AlarmActions"] == [topic]
    }
    age = float(stack.template["Parameters"]["OldestMessageAlarmSeconds"]["Default"])
    assert found == {
        name: alarm
        for queue in queues.ALL_QUEUES
        for name, alarm in (
            (
                f"{prefix}{queue}-dlq-parked",
                ("ApproximateNumberOfMessagesVisible", f"{prefix}{queue}-dlq", 1.0),
            ),
            (f"{prefix}{queue}-oldest", ("ApproximateAgeOfOldestMessage", prefix + queue, age)),
        )
    }
    [subscription] = stack.client("sns").list_subscriptions_by_topic(TopicArn=topic)[
        "Subscriptions"
    ]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ops@example.com")


def _secret(stack: Stack, logical: str) -> str:
    value = stack.client("secretsmanager").get_secret_value(SecretId=stack.physical[logical])
    return str(value["SecretString"])


def test_the_processes_read_redis_and_their_secrets_from_secrets_manager(stack):
    [group] = stack.client("elasticache").describe_replication_groups(
        ReplicationGroupId=stack.physical["Redis"]
    )["ReplicationGroups"]
    assert group["TransitEncryptionEnabled"] and group["AtRestEncryptionEnabled"]
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]
    url = _secret(stack, "RedisUrl")
    token = _secret(stack, "RedisAuthToken")
    assert url == (
        f"rediss://:{token}@{endpoint['Address']}:{endpoint['Port']}/0?ssl_cert_reqs=required"
    )
    assert stack.settings(KOPTER_REDIS_URL=url).redis_url == url
    login = _secret(stack, "FlowerLogin")
    [pair] = stack.settings(KOPTER_FLOWER_BASIC_AUTH=login).flower_basic_auth
    assert pair.startswith("kopter:") and len(pair) > 30
    assert len(_secret(stack, "ApiCursorKey")) >= 32
    for process, wanted in (
        ("Api", {"KOPTER_REDIS_URL", "KOPTER_API_CURSOR_KEY", "KOPTER_API_GATEWAY_SECRET"}),
        ("Flower", {"KOPTER_REDIS_URL", "KOPTER_FLOWER_BASIC_AUTH"}),
        ("WorkerRealtime", {"KOPTER_REDIS_URL"}),
        ("Beat", {"KOPTER_REDIS_URL"}),
    ):
        secrets_of = {s["name"]: s["valueFrom"] for s in stack.container(process)["secrets"]}
        assert set(secrets_of) == wanted, process
        assert secrets_of["KOPTER_REDIS_URL"] == stack.physical["RedisUrl"]
    # Nothing secret is in the template: every secret is generated in the stack.
    text = json.dumps(stack.template)
    assert token not in text and login not in text


def test_api_gateway_trusts_the_user_pool_and_passes_its_sub_on(stack):
    gateway = stack.client("apigateway")
    api = stack.physical["RestApi"]
    pool = stack.outputs["UserPoolId"]
    [authorizer] = gateway.get_authorizers(restApiId=api)["items"]
    assert authorizer["type"] == "COGNITO_USER_POOLS"
    assert authorizer["providerARNs"] == [
        f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/{pool}"
    ]
    checked = 0
    for resource in gateway.get_resources(restApiId=api, limit=500)["items"]:
        for method in resource.get("resourceMethods", {}):
            found = gateway.get_method(restApiId=api, resourceId=resource["id"], httpMethod=method)
            integration = found["methodIntegration"]
            if method == "OPTIONS" or resource["path"] == "/healthz":
                continue
            assert found["authorizationType"] == "COGNITO_USER_POOLS", resource["path"]
            assert found["authorizerId"] == authorizer["id"]
            assert integration["uri"] == "https://api.example.com" + resource["path"]
            parameters = integration["requestParameters"]
            assert parameters["integration.request.header.identityId"] == (
                "context.authorizer.claims.sub"
            )
            checked += 1
    assert checked >= 9  # every /v1/ route
    stage = gateway.get_stage(restApiId=api, stageName="live")
    assert stage["variables"]["kopterGatewaySecret"] == _secret(stack, "GatewaySecret")
    environment = {e["name"]: e["value"] for e in stack.container("Api")["environment"]}
    assert environment["KOPTER_API_AUTH"] == "gateway"
    issuer = f"https://cognito-idp.us-east-1.amazonaws.com/{pool}"
    assert environment["KOPTER_API_JWT_JWKS_URL"] == issuer + "/.well-known/jwks.json"
    assert environment["KOPTER_API_JWT_ISSUER"] == issuer == stack.outputs["OidcIssuer"]
    assert environment["KOPTER_API_JWT_AUDIENCE"] == stack.outputs["UserPoolClientId"]
    web = stack.outputs["WebUrl"]
    assert environment["KOPTER_API_CORS_ORIGINS"] == web.rstrip("/")
    client = stack.client("cognito-idp").describe_user_pool_client(
        UserPoolId=pool, ClientId=stack.outputs["UserPoolClientId"]
    )["UserPoolClient"]
    assert client["CallbackURLs"] == [web] and client["AllowedOAuthFlows"] == ["code"]
    assert "ClientSecret" not in client


def test_cloudfront_alone_reads_the_web_bucket(stack):
    distribution = stack.client("cloudfront").get_distribution(
        Id=stack.outputs["WebDistributionId"]
    )["Distribution"]
    [origin] = distribution["DistributionConfig"]["Origins"]["Items"]
    bucket = stack.outputs["WebBucketName"]
    assert origin["DomainName"] == f"{bucket}.s3.us-east-1.amazonaws.com"
    assert origin["OriginAccessControlId"] == stack.physical["WebOriginAccessControl"]
    assert stack.outputs["WebUrl"] == f"https://{distribution['DomainName']}/"
    policy = json.loads(stack.client("s3").get_bucket_policy(Bucket=bucket)["Policy"])
    [reads] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert reads["Condition"]["StringEquals"]["AWS:SourceArn"] == distribution["ARN"]


def test_deploy_web_publishes_the_app_with_the_stacks_outputs(stack, kopter):
    published = kopter("deploy", "web", "--stack", STACK, env=stack.env)
    assert (
        published.stdout.strip()
        == f"published {len(_app_files())} files: {stack.outputs['WebUrl']}"
    )
    s3 = stack.client("s3")
    bucket = stack.outputs["WebBucketName"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == _app_files()
    config = s3.get_object(Bucket=bucket, Key="config.json")
    assert config["CacheControl"] == "no-cache" and config["ContentType"] == "application/json"
    assert json.loads(config["Body"].read()) == {
        "api": stack.outputs["ApiUrl"],
        "oidc": {
            "issuer": stack.outputs["OidcIssuer"],
            "client_id": stack.outputs["UserPoolClientId"],
            "scopes": "openid",
            "redirect_uri": stack.outputs["WebUrl"],
        },
    }
    invalidations = stack.client("cloudfront").list_invalidations(
        DistributionId=stack.outputs["WebDistributionId"]
    )["InvalidationList"]
    assert invalidations["Quantity"] == 1
    with pytest.raises(Refused, match=r"^no stack 'nope' in us-east-1$"):
        outputs(stack.settings(), "nope")


def _app_files() -> set[str]:
    source = ROOT / "web" / "src"
    return {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()} | {
        "config.json"
    }


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A certificate authority, and a certificate of 127.0.0.1 it signed (CA, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    authority = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kopter test CA")])

    def signed(subject: str, public: Any, extension: Any) -> Any:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = x509.CertificateBuilder().subject_name(name).issuer_name(authority)
        builder = builder.public_key(public).serial_number(x509.random_serial_number())
        builder = builder.not_valid_before(now - timedelta(hours=1))
        builder = builder.not_valid_after(now + timedelta(hours=1))
        return builder.add_extension(extension, critical=False).sign(ca_key, hashes.SHA256())

    ca = signed("kopter test CA", ca_key.public_key(), x509.BasicConstraints(True, None))
    server = signed(
        "127.0.0.1",
        key.public_key(),
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
    )
    paths = folder / "ca.pem", folder / "redis.pem", folder / "redis.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# What a worker, beat, the API and Flower open on KOPTER_REDIS_URL: the cache, the result
# backend, the control plane's connection and beat's lock and schedule.
REDIS_CLIENTS = """
from kopter import cache
from kopter.settings import get_settings
from redbeat.schedulers import get_redis
from tasks.app import app
from tasks.controlplane import control_connection

assert cache.client(get_settings()).ping()
app.backend.set("kopter-tls", "yes")
assert app.backend.get("kopter-tls") == b"yes"
with control_connection() as connection:
    assert connection.default_channel.client.ping()
assert get_redis(app).ping()
print("all four answered")
"""


def test_kopters_redis_clients_take_the_stacks_url_over_tls(stack, tmp_path):
    """ElastiCache's endpoint, TLS with a certificate the system trusts and an AUTH token, in the
    URL the stack makes: here a redis-server of the same kind on 127.0.0.1."""
    ca, certificate, key = _certificates(tmp_path)
    port = free_port()
    redis = spawn(
        "redis-tls",
        [
            "redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(certificate), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--requirepass", _secret(stack, "RedisAuthToken"), "--save", "", "--appendonly", "no",
        ],
        os.environ,
        OUTPUT / "logs",
    )  # fmt: skip
    try:
        wait_for_port(redis, port)
        [group] = stack.client("elasticache").describe_replication_groups(
            ReplicationGroupId=stack.physical["Redis"]
        )["ReplicationGroups"]
        endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]
        url = _secret(stack, "RedisUrl").replace(
            f"@{endpoint['Address']}:{endpoint['Port']}/", f"@127.0.0.1:{port}/"
        )
        trusted = subprocess.run(
            [sys.executable, "-c", REDIS_CLIENTS],
            env={**os.environ, "KOPTER_REDIS_URL": url, "SSL_CERT_FILE": str(ca)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert trusted.stdout.strip() == "all four answered", trusted.stderr
        # The certificate is checked: one the system does not trust is refused.
        with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            Redis.from_url(url, socket_connect_timeout=5).ping()
    finally:
        redis.stop()
