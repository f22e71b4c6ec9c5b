"""moto's server, with CloudFormation support for the resource types of kopter's stack that
moto's CloudFormation lacks, and for what it drops of two it has (a RestApi's Body, a task
definition's roles and size) (``argv(port)`` starts one).

moto's CloudFormation skips a type it does not know with a warning, and a stack that reads an
attribute of a skipped resource (Redis's endpoint, the distribution's domain) fails. Each class
below makes its resource the way CloudFormation would: in moto's own backend of that service,
from the template's properties as CloudFormation resolved them (dynamic references to Secrets
Manager included), so the tests read it back through moto's API like any other resource.
``COMPLETED`` names the types; a type neither moto nor this module knows is still skipped, with
moto's warning in the server's log.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from typing import Any, ClassVar

from moto.apigateway.models import apigateway_backends
from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.cloudfront.models import cloudfront_backends
from moto.cloudwatch.models import cloudwatch_backends
from moto.cognitoidp.models import cognitoidp_backends
from moto.core.common_models import CloudFormationModel
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs.models import ecs_backends
from moto.elasticache.models import elasticache_backends
from moto.s3.models import s3_backends
from moto.secretsmanager.models import secretsmanager_backends
from moto.sns.models import sns_backends
from moto.utilities.utils import get_partition
from openapi_spec_validator import validate

DYNAMIC_SECRET = re.compile(r"\{\{resolve:secretsmanager:([^}]+?)\}\}")


def resolve_secrets(value: Any, account: str, region: str) -> Any:
    """``{{resolve:secretsmanager:ID[:SecretString:KEY]}}`` as CloudFormation resolves it."""
    if isinstance(value, dict):
        return {k: resolve_secrets(v, account, region) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_secrets(v, account, region) for v in value]
    if not isinstance(value, str):
        return value

    def secret(match: re.Match[str]) -> str:
        # An ARN holds colons itself: the secret is the first seven fields of one.
        fields = match.group(1).split(":")
        secret_id, rest = (
            (":".join(fields[:7]), fields[7:]) if fields[0] == "arn" else (fields[0], fields[1:])
        )
        string = secretsmanager_backends[account][region].get_secret_value(secret_id, None, None)[
            "SecretString"
        ]
        if len(rest) >= 2 and rest[1]:
            return str(json.loads(string)[rest[1]])
        return string

    return DYNAMIC_SECRET.sub(secret, value)


class _Completion:
    """What each completion shares (each is a direct subclass of CloudFormationModel too:
    moto's CloudFormation finds its models among those)."""

    TYPE: ClassVar[str]

    def __init__(self, ref: str, attributes: dict[str, Any] | None = None):
        self.ref = ref
        self.attributes = attributes or {}

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @property
    def physical_resource_id(self) -> str:
        return self.ref

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.attributes[attribute_name]

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> _Completion:
        properties = resolve_secrets(cloudformation_json["Properties"], account_id, region_name)
        return cls.make(resource_name, properties, account_id, region_name)

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        raise NotImplementedError


class Secret(_Completion, CloudFormationModel):
    TYPE = "AWS::SecretsManager::Secret"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        backend = secretsmanager_backends[account][region]
        value = p.get("SecretString")
        generate = p.get("GenerateSecretString")
        if generate is not None:
            answer = backend.get_random_password(
                int(generate.get("PasswordLength", 32)),
                generate.get("ExcludeCharacters", ""),
                False,
                bool(generate.get("ExcludePunctuation")),
                False,
                False,
                False,
                True,
            )
            password = json.loads(answer)["RandomPassword"]
            if "SecretStringTemplate" in generate:
                document = json.loads(generate["SecretStringTemplate"])
                document[generate["GenerateStringKey"]] = password
                password = json.dumps(document)
            value = password
        name = p.get("Name", name)
        backend.create_secret(name, value, None, p.get("Description"), None, None, None, [], False)
        return cls(backend.secrets[name].arn)


class CacheSubnetGroup(_Completion, CloudFormationModel):
    TYPE = "AWS::ElastiCache::SubnetGroup"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        name = p.get("CacheSubnetGroupName", name.lower())
        elasticache_backends[account][region].create_cache_subnet_group(
            name, p["Description"], p["SubnetIds"], None
        )
        return cls(name)


class ReplicationGroup(_Completion, CloudFormationModel):
    TYPE = "AWS::ElastiCache::ReplicationGroup"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        group_id = p.get("ReplicationGroupId", name.lower()[-40:].lstrip("-"))
        group = elasticache_backends[account][region].create_replication_group(
            replication_group_id=group_id,
            replication_group_description=p["ReplicationGroupDescription"],
            global_replication_group_id=None,  # type: ignore[arg-type]
            primary_cluster_id=None,  # type: ignore[arg-type]
            automatic_failover_enabled=p.get("AutomaticFailoverEnabled", False),
            multi_az_enabled=p.get("MultiAZEnabled", False),
            num_cache_clusters=int(p.get("NumCacheClusters", 1)),
            preferred_cache_cluster_azs=None,  # type: ignore[arg-type]
            num_node_groups=None,  # type: ignore[arg-type]
            replicas_per_node_group=None,  # type: ignore[arg-type]
            node_group_configuration=None,  # type: ignore[arg-type]
            cache_node_type=p["CacheNodeType"],
            engine=p.get("Engine", "redis"),
            engine_version=p.get("EngineVersion"),  # type: ignore[arg-type]
            cache_parameter_group_name=None,  # type: ignore[arg-type]
            cache_subnet_group_name=p.get("CacheSubnetGroupName"),  # type: ignore[arg-type]
            cache_security_group_names=None,  # type: ignore[arg-type]
            security_group_ids=p.get("SecurityGroupIds"),  # type: ignore[arg-type]
            tags=[],
            snapshot_arns=None,  # type: ignore[arg-type]
            snapshot_name=None,  # type: ignore[arg-type]
            preferred_maintenance_window=None,  # type: ignore[arg-type]
            port=int(p.get("Port", 6379)),
            notification_topic_arn=None,  # type: ignore[arg-type]
            auto_minor_version_upgrade=p.get("AutoMinorVersionUpgrade", True),
            snapshot_retention_limit=int(p.get("SnapshotRetentionLimit", 0)),
            snapshot_window=None,  # type: ignore[arg-type]
            auth_token=p.get("AuthToken"),  # type: ignore[arg-type]
            transit_encryption_enabled=p.get("TransitEncryptionEnabled", False),
            at_rest_encryption_enabled=p.get("AtRestEncryptionEnabled", False),
            kms_key_id=None,  # type: ignore[arg-type]
            user_group_ids=None,  # type: ignore[arg-type]
            log_delivery_configurations=None,  # type: ignore[arg-type]
            data_tiering_enabled=False,
            network_type=None,  # type: ignore[arg-type]
            ip_discovery=None,  # type: ignore[arg-type]
            transit_encryption_mode=None,  # type: ignore[arg-type]
            cluster_mode=None,  # type: ignore[arg-type]
            serverless_cache_snapshot_name=None,  # type: ignore[arg-type]
        )
        endpoint = group.node_groups[0]["primary_endpoint"]
        return cls(
            group_id,
            {
                "PrimaryEndPoint.Address": endpoint["address"],
                "PrimaryEndPoint.Port": str(endpoint["port"]),
            },
        )


class UserPool(_Completion, CloudFormationModel):
    TYPE = "AWS::Cognito::UserPool"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        config = {k: v for k, v in p.items() if k != "UserPoolName"}
        pool = cognitoidp_backends[account][region].create_user_pool(
            p.get("UserPoolName", name), config
        )
        return cls(pool.id, {"Arn": pool.arn})


class UserPoolClient(_Completion, CloudFormationModel):
    TYPE = "AWS::Cognito::UserPoolClient"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        config = {k: v for k, v in p.items() if k not in ("UserPoolId", "GenerateSecret")}
        client = cognitoidp_backends[account][region].create_user_pool_client(
            p["UserPoolId"], bool(p.get("GenerateSecret")), config
        )
        return cls(client.id, {"ClientId": client.id})


class UserPoolDomain(_Completion, CloudFormationModel):
    TYPE = "AWS::Cognito::UserPoolDomain"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        cognitoidp_backends[account][region].create_user_pool_domain(
            p["UserPoolId"], p["Domain"], p.get("CustomDomainConfig")
        )
        return cls(p["Domain"])


class OriginAccessControl(_Completion, CloudFormationModel):
    TYPE = "AWS::CloudFront::OriginAccessControl"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        control = cloudfront_backends[account]["global"].create_origin_access_control(
            copy.deepcopy(p["OriginAccessControlConfig"])
        )
        return cls(control.id, {"Id": control.id})


class Distribution(_Completion, CloudFormationModel):
    TYPE = "AWS::CloudFront::Distribution"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        # CloudFormation's lists are the API's {Quantity, Items}.
        config = copy.deepcopy(p["DistributionConfig"])
        config["Origins"] = {"Quantity": len(config["Origins"]), "Items": config["Origins"]}
        config["CallerReference"] = name
        distribution, _, _ = cloudfront_backends[account]["global"].create_distribution(config, [])
        return cls(
            distribution.distribution_id,
            {"DomainName": distribution.domain_name, "Id": distribution.distribution_id},
        )


class BucketPolicy(_Completion, CloudFormationModel):
    TYPE = "AWS::S3::BucketPolicy"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        s3_backends[account][get_partition(region)].put_bucket_policy(
            p["Bucket"], json.dumps(p["PolicyDocument"]).encode()
        )
        return cls(p["Bucket"])


class Subscription(_Completion, CloudFormationModel):
    TYPE = "AWS::SNS::Subscription"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        subscription = sns_backends[account][region].subscribe(
            p["TopicArn"], p["Endpoint"], p["Protocol"]
        )
        return cls(subscription.arn)


class Alarm(_Completion, CloudFormationModel):
    TYPE = "AWS::CloudWatch::Alarm"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        alarm = cloudwatch_backends[account][region].put_metric_alarm(
            name=p.get("AlarmName", name),
            namespace=p["Namespace"],
            metric_name=p["MetricName"],
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p["Period"]),
            threshold=float(p["Threshold"]),
            statistic=p["Statistic"],
            description=p.get("AlarmDescription", ""),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions"),
            treat_missing_data=p.get("TreatMissingData"),
        )
        return cls(alarm.name, {"Arn": alarm.alarm_arn})


class ScalableTarget(_Completion, CloudFormationModel):
    TYPE = "AWS::ApplicationAutoScaling::ScalableTarget"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        applicationautoscaling_backends[account][region].register_scalable_target(
            p["ServiceNamespace"],
            p["ResourceId"],
            p["ScalableDimension"],
            int(p["MinCapacity"]),
            int(p["MaxCapacity"]),
            p.get("RoleARN"),  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
        )
        # CloudFormation's Ref of a scalable target.
        return cls(f"{p['ResourceId']}|{p['ScalableDimension']}|{p['ServiceNamespace']}")


class ScalingPolicy(_Completion, CloudFormationModel):
    TYPE = "AWS::ApplicationAutoScaling::ScalingPolicy"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        resource_id, dimension, namespace = p["ScalingTargetId"].split("|")
        body = copy.deepcopy(p["TargetTrackingScalingPolicyConfiguration"])
        body["TargetValue"] = float(body["TargetValue"])
        policy = applicationautoscaling_backends[account][region].put_scaling_policy(
            p["PolicyName"], namespace, resource_id, dimension, body, p["PolicyType"]
        )
        return cls(policy.policy_arn)


class Stage(_Completion, CloudFormationModel):
    TYPE = "AWS::ApiGateway::Stage"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        deployment = p["DeploymentId"]
        # moto's Deployment has no physical id: its Ref gives the object itself.
        deployment = deployment if isinstance(deployment, str) else deployment.id
        apigateway_backends[account][region].create_stage(
            p["RestApiId"],
            p["StageName"],
            deployment,
            variables=p.get("Variables"),
            tracing_enabled=p.get("TracingEnabled"),
        )
        return cls(p["StageName"])


class RestApi(_Completion, CloudFormationModel):
    """moto's own RestApi drops the Body (and moto's importer cannot take a mock integration):
    the document is imported here as API Gateway imports it, authorizers included."""

    TYPE = "AWS::ApiGateway::RestApi"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        backend = apigateway_backends[account][region]
        body = p["Body"]
        if p.get("FailOnWarnings"):
            validate(body)
        api = backend.create_rest_api(p["Name"], p.get("Description", ""))
        schemes = body.get("components", {}).get("securitySchemes", {})
        authorizers = {}
        for scheme, spec in schemes.items():
            if "x-amazon-apigateway-authorizer" in spec:
                authorizer = spec["x-amazon-apigateway-authorizer"]
                authorizers[scheme] = backend.create_authorizer(
                    api.id,
                    scheme,
                    authorizer["type"].upper(),
                    provider_arns=authorizer.get("providerARNs"),
                    identity_source=f"method.request.header.{spec['name']}",
                ).id
        for path, operations in sorted(body["paths"].items()):
            resource = api.default
            for part in path.strip("/").split("/"):
                below = resource.get_path().rstrip("/") + "/" + part
                resource = api.get_resource_for_path(below) or backend.create_resource(
                    api.id, resource.id, part
                )
            for method, operation in operations.items():
                [scheme] = [*operation.get("security", [{}])[0]] or [None]
                kind = "NONE"
                if scheme in authorizers:
                    kind = "COGNITO_USER_POOLS"
                elif scheme:
                    kind = "AWS_IAM"
                backend.put_method(
                    api.id,
                    resource.id,
                    method.upper(),
                    kind,
                    authorizer_id=authorizers.get(scheme),
                )
                integration = operation["x-amazon-apigateway-integration"]
                backend.put_integration(
                    api.id,
                    resource.id,
                    method.upper(),
                    integration["type"].upper(),
                    integration.get("uri", ""),
                    integration.get("httpMethod"),  # type: ignore[arg-type]
                    request_templates=integration.get("requestTemplates"),
                    passthrough_behavior=integration.get("passthroughBehavior"),
                    request_parameters=integration.get("requestParameters"),
                    connection_type=integration.get("connectionType"),
                )
        return cls(api.id, {"RootResourceId": api.default.id})


class TaskDefinition(_Completion, CloudFormationModel):
    """moto's own TaskDefinition keeps only the family, containers, volumes and memory: made
    here with its roles, size, network mode and platform too."""

    TYPE = "AWS::ECS::TaskDefinition"

    @classmethod
    def make(cls, name: str, p: dict[str, Any], account: str, region: str) -> _Completion:
        task = ecs_backends[account][region].register_task_definition(
            family=p["Family"],
            container_definitions=remap_nested_keys(p["ContainerDefinitions"], pascal_to_camelcase),
            volumes=remap_nested_keys(p.get("Volumes", []), pascal_to_camelcase),
            network_mode=p.get("NetworkMode"),
            requires_compatibilities=p.get("RequiresCompatibilities"),
            cpu=p.get("Cpu"),
            memory=p.get("Memory"),
            task_role_arn=p.get("TaskRoleArn"),
            execution_role_arn=p.get("ExecutionRoleArn"),
            runtime_platform=p.get("RuntimePlatform"),
        )
        return cls(task.arn, {"TaskDefinitionArn": task.arn})


COMPLETED = {c.TYPE for c in _Completion.__subclasses__()}


def argv(port: int) -> list[str]:
    """The command of a moto server with these completions, on 127.0.0.1:port (its models must
    be imported under this module's name: moto files each model under its package)."""
    return [sys.executable, "-c", f"import {__name__}; {__name__}.serve({port})"]


def serve(port: int) -> None:
    from kopter.motoserver import main

    main(["-H", "127.0.0.1", "-p", str(port)])
