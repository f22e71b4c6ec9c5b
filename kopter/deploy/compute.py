"""kopter's processes on ECS Fargate, all from one image: a service per worker group, beat (two
tasks: its lock and fencing let one fire), the read API behind the load balancer, Flower, and
the operator's task (`kopter bootstrap`, or any `kopter` command) run on demand.

Each process's task role is exactly the policy `kopter iam` prints for it (``kopter/iam/own.py``),
made for the stack's account, region and prefix. The execution role (what ECS itself needs to
start a task: the image, the log stream, the secrets) is separate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kopter.deploy import parameters
from kopter.deploy.cfn import (
    Template,
    get_att,
    if_,
    mark,
    partitioned,
    ref,
    resolved,
    skip,
    sub,
    symbolic,
)
from kopter.deploy.datastores import SECRET_KEY
from kopter.deploy.groups import WorkerGroup
from kopter.deploy.network import API_PORT, FLOWER_PORT
from kopter.deploy.scaling import backlog_target
from kopter.iam import own
from kopter.settings import load

CPU = [256, 512, 1024, 2048, 4096, 8192, 16384]
MEMORY = [512, 1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192, 12288, 16384, 30720, 61440]
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]
# Fargate gives a container at most this long between SIGTERM and SIGKILL; a worker refuses a
# KOPTER_WORKER_STOP_TIMEOUT below 15 s (its soft shutdown needs a margin).
FARGATE_MAX_STOP_TIMEOUT = 120
WORKER_LEAST_STOP_TIMEOUT = 15
HEALTH = {"Interval": 30, "Timeout": 10, "Retries": 3, "StartPeriod": 60}


@dataclass(frozen=True)
class Process:
    """One kind of kopter process: its task definition and (unless run on demand) service."""

    name: str  # logical id prefix: WorkerRealtime, Beat, Api, Flower, Operator
    role: dict[str, Any]  # its task role's policy, as kopter iam prints it
    command: list[Any]
    health: list[str] | None
    cpu: Any  # Fargate CPU units and MiB: a number, or a worker group's parameter
    memory: Any
    environment: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[Any] = field(default_factory=list)
    port: int | None = None
    stop_timeout: Any = None


def role_policy(role: str, consumed: tuple[str, ...] = ()) -> dict[str, Any]:
    """``kopter iam ROLE`` for the stack's deployment; a worker's with the sns:Publish of the
    notifications topic when the stack names one, as kopter iam adds it when the setting is set."""
    base = load({})
    without = own.policy(symbolic(base), role, consumed)
    with_topic = own.policy(
        symbolic(base, notifications_topic_arn=mark("NotificationsTopicArn")), role, consumed
    )
    policy = resolved(partitioned(without))
    if with_topic == without:
        return policy
    return if_("HasNotificationsTopic", resolved(partitioned(with_topic)), policy)


def _secret(name: str, resource: str) -> dict[str, Any]:
    return {"Name": name, "ValueFrom": ref(resource)}


def add_parameters(t: Template, groups: tuple[WorkerGroup, ...]) -> None:
    t.parameter(
        "Image",
        Type="String",
        AllowedPattern=r"^\S+(:[\w][\w.-]{0,127}|@sha256:[a-f0-9]{64})$",
        Description="kopter's image with its tag, as pushed to the account's ECR "
        "(ACCOUNT.dkr.ecr.REGION.amazonaws.com/kopter:VERSION)",
    )
    t.parameter(
        "ImageArchitecture",
        Type="String",
        Default="X86_64",
        AllowedValues=["X86_64", "ARM64"],
        Description="The CPU architecture the image was built for",
    )
    t.parameter(
        "WorkerStopTimeout",
        Type="Number",
        Default=FARGATE_MAX_STOP_TIMEOUT,
        MinValue=WORKER_LEAST_STOP_TIMEOUT,
        MaxValue=FARGATE_MAX_STOP_TIMEOUT,
        Description="Seconds ECS gives a worker between SIGTERM and SIGKILL "
        "(KOPTER_WORKER_STOP_TIMEOUT)",
    )
    t.parameter(
        "LogRetentionDays",
        Type="Number",
        Default=365,
        AllowedValues=LOG_RETENTION_DAYS,
        Description="Days CloudWatch keeps the processes' logs",
    )
    t.parameter(
        "ApiTasks", Type="Number", Default=2, MinValue=1, Description="Tasks of the read API"
    )
    for g in groups:
        on = ",".join(g.queues)
        target = backlog_target(g.processes, g.task_seconds, g.wait_seconds)
        for suffix, default, bounds, description in (
            ("Processes", g.processes, {"MinValue": 1, "MaxValue": 64},
             "Worker processes (Celery's -c) in each task"),
            ("LeastTasks", g.least, {"MinValue": 1}, "The fewest tasks"),
            ("MostTasks", g.most, {"MinValue": 1}, "The most tasks"),
            ("BacklogPerTask", target, {"MinValue": 1},
             "Messages visible or in flight per task that the scaling keeps (processes x "
             f"acceptable wait / task time: {g.processes} x {g.wait_seconds:g} s / "
             f"{g.task_seconds:g} s)"),
            ("Cpu", g.cpu, {"AllowedValues": CPU}, "Fargate CPU units of a task"),
            ("Memory", g.memory, {"AllowedValues": MEMORY}, "MiB of memory of a task"),
        ):  # fmt: skip
            t.parameter(
                g.logical + suffix,
                Type="Number",
                Default=default,
                Description=f"{description}, on {on}",
                **bounds,
            )


def processes(groups: tuple[WorkerGroup, ...]) -> list[Process]:
    common = [
        *parameters.environment(),
        {"Name": "KOPTER_REGION", "Value": ref("AWS::Region")},
        {"Name": "KOPTER_AWS_ACCOUNT_ID", "Value": ref("AWS::AccountId")},
    ]
    redis = [_secret("KOPTER_REDIS_URL", "RedisUrl")]
    workers = [
        Process(
            g.logical,
            role_policy("worker", g.queues),
            [
                "celery", "-A", "tasks", "worker", "-Q", ",".join(g.queues),
                "-c", ref(g.logical + "Processes"), "-l", "INFO",
            ],
            ["CMD", "kopter", "health", "worker"],
            ref(g.logical + "Cpu"),
            ref(g.logical + "Memory"),
            [*common, {"Name": "KOPTER_WORKER_STOP_TIMEOUT", "Value": ref("WorkerStopTimeout")}],
            redis,
            stop_timeout=ref("WorkerStopTimeout"),
        )
        for g in groups
    ]  # fmt: skip
    pool = "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"
    api_environment = [
        *common,
        {"Name": "KOPTER_API_AUTH", "Value": if_("UseApiGateway", "gateway", "jwt")},
        {"Name": "KOPTER_API_JWT_JWKS_URL", "Value": sub(pool + "/.well-known/jwks.json")},
        {"Name": "KOPTER_API_JWT_ISSUER", "Value": sub(pool)},
        {"Name": "KOPTER_API_JWT_AUDIENCE", "Value": ref("UserPoolClient")},
        {"Name": "KOPTER_API_CORS_ORIGINS", "Value": sub("https://${WebDistribution.DomainName}")},
    ]
    return [
        *workers,
        Process(
            "Beat",
            role_policy("beat"),
            ["celery", "-A", "tasks", "beat", "-l", "INFO"],
            ["CMD", "kopter", "health", "beat"],
            "256",
            "512",
            common,
            redis,
        ),
        Process(
            "Api",
            role_policy("api"),
            ["kopter", "api", "--host", "0.0.0.0", "--port", str(API_PORT)],
            ["CMD", "kopter", "health", "api", "--url", f"http://127.0.0.1:{API_PORT}"],
            "512",
            "1024",
            api_environment,
            [
                *redis,
                _secret("KOPTER_API_CURSOR_KEY", "ApiCursorKey"),
                if_("UseApiGateway", _secret("KOPTER_API_GATEWAY_SECRET", "GatewaySecret")),
            ],
            port=API_PORT,
        ),
        Process(
            "Flower",
            role_policy("flower"),
            ["kopter", "flower", "--address", "0.0.0.0", "--port", str(FLOWER_PORT)],
            None,  # the load balancer's health check asks its /healthcheck
            "256",
            "512",
            common,
            [*redis, _secret("KOPTER_FLOWER_BASIC_AUTH", "FlowerLogin")],
            port=FLOWER_PORT,
        ),
        Process(
            "Operator",
            role_policy("operator"),
            ["kopter", "bootstrap"],
            None,
            "256",
            "512",
            common,
            redis,
        ),
    ]


def add_secrets(t: Template) -> None:
    generated = {"PasswordLength": 48, "ExcludePunctuation": True}
    t.add(
        "ApiCursorKey",
        "AWS::SecretsManager::Secret",
        {
            "Description": sub("kopter ${Prefix}: KOPTER_API_CURSOR_KEY"),
            "GenerateSecretString": generated,
        },
        metadata=skip(SECRET_KEY),
    )
    t.add(
        "FlowerLogin",
        "AWS::SecretsManager::Secret",
        {
            "Description": sub("kopter ${Prefix}: Flower's login (KOPTER_FLOWER_BASIC_AUTH)"),
            "GenerateSecretString": {
                "SecretStringTemplate": '{"username": "kopter"}',
                "GenerateStringKey": "password",
                "PasswordLength": 32,
                "ExcludePunctuation": True,
            },
        },
        metadata=skip(SECRET_KEY),
    )
    t.add(
        "GatewaySecret",
        "AWS::SecretsManager::Secret",
        {
            "Description": sub("kopter ${Prefix}: KOPTER_API_GATEWAY_SECRET"),
            "GenerateSecretString": generated,
        },
        condition="UseApiGateway",
        metadata=skip(SECRET_KEY),
    )


def _trust() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
                    "ArnLike": {
                        "aws:SourceArn": sub(
                            "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*"
                        )
                    },
                },
            }
        ],
    }


def add_roles(t: Template, processes: list[Process]) -> None:
    secrets = [
        ref("RedisUrl"),
        ref("ApiCursorKey"),
        ref("FlowerLogin"),
        if_("UseApiGateway", ref("GatewaySecret")),
    ]
    t.add(
        "ExecutionRole",
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": _trust(),
            "ManagedPolicyArns": [
                sub(
                    "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                    "AmazonECSTaskExecutionRolePolicy"
                )
            ],
            "Policies": [
                {
                    "PolicyName": "secrets",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": secrets,
                            }
                        ],
                    },
                }
            ],
        },
    )
    for p in processes:
        t.add(
            p.name + "Role",
            "AWS::IAM::Role",
            {
                "AssumeRolePolicyDocument": _trust(),
                "Policies": [{"PolicyName": "kopter", "PolicyDocument": p.role}],
            },
        )


def add_tasks(t: Template, processes: list[Process]) -> None:
    t.add(
        "Logs",
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": sub("/kopter/${AWS::StackName}"),
            "RetentionInDays": ref("LogRetentionDays"),
        },
        metadata=skip(
            (
                "CKV_AWS_158",
                "CloudWatch encrypts logs at rest with its own key, and kopter logs no secret "
                "(tests/test_isolation.py reads every log for credentials)",
            ),
        ),
    )  # fmt: skip
    for p in processes:
        container: dict[str, Any] = {
            "Name": p.name.lower(),
            "Image": ref("Image"),
            "Essential": True,
            "Command": p.command,
            "Environment": p.environment,
            "Secrets": p.secrets,
            "ReadonlyRootFilesystem": True,
            # Heartbeats (KOPTER_HEALTH_DIR) and Celery's scratch files.
            "MountPoints": [{"SourceVolume": "tmp", "ContainerPath": "/tmp"}],
            "LogConfiguration": {
                "LogDriver": "awslogs",
                "Options": {
                    "awslogs-group": ref("Logs"),
                    "awslogs-region": ref("AWS::Region"),
                    "awslogs-stream-prefix": p.name.lower(),
                },
            },
        }
        if p.health:
            container["HealthCheck"] = {"Command": p.health, **HEALTH}
        if p.port:
            container["PortMappings"] = [{"ContainerPort": p.port, "Protocol": "tcp"}]
        if p.stop_timeout is not None:
            container["StopTimeout"] = p.stop_timeout
        t.add(
            p.name + "Task",
            "AWS::ECS::TaskDefinition",
            {
                "Family": sub("${AWS::StackName}-" + p.name.lower()),
                "RequiresCompatibilities": ["FARGATE"],
                "NetworkMode": "awsvpc",
                "Cpu": p.cpu,
                "Memory": p.memory,
                "RuntimePlatform": {
                    "OperatingSystemFamily": "LINUX",
                    "CpuArchitecture": ref("ImageArchitecture"),
                },
                "ExecutionRoleArn": get_att("ExecutionRole", "Arn"),
                "TaskRoleArn": get_att(p.name + "Role", "Arn"),
                "Volumes": [{"Name": "tmp"}],
                "ContainerDefinitions": [container],
            },
        )


def add_services(t: Template, processes: list[Process]) -> None:
    t.add(
        "Cluster",
        "AWS::ECS::Cluster",
        {
            # Container Insights publishes RunningTaskCount, the workers' scaling divisor.
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
            "CapacityProviders": ["FARGATE"],
        },
    )
    desired = {"Beat": 2, "Api": ref("ApiTasks"), "Flower": 1}
    for p in processes:
        if p.name == "Operator":
            continue  # run on demand: aws ecs run-task --task-definition <OperatorTask>
        service: dict[str, Any] = {
            "Cluster": ref("Cluster"),
            "LaunchType": "FARGATE",
            "TaskDefinition": ref(p.name + "Task"),
            "DesiredCount": desired.get(p.name, ref(p.name + "LeastTasks")),
            "DeploymentConfiguration": {
                "MaximumPercent": 200,
                "MinimumHealthyPercent": 100,
                "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
            },
            "NetworkConfiguration": {
                "AwsvpcConfiguration": {
                    "AssignPublicIp": "DISABLED",
                    "Subnets": ref("PrivateSubnetIds"),
                    "SecurityGroups": [ref("ServiceSecurityGroup")],
                }
            },
            "PropagateTags": "SERVICE",
            "EnableECSManagedTags": True,
        }
        depends = None
        if p.port:
            service["LoadBalancers"] = [
                {
                    "ContainerName": p.name.lower(),
                    "ContainerPort": p.port,
                    "TargetGroupArn": ref(p.name + "TargetGroup"),
                }
            ]
            service["HealthCheckGracePeriodSeconds"] = 60
            depends = [p.name + "Listener"]
        t.add(p.name + "Service", "AWS::ECS::Service", service, depends_on=depends)
