"""kopter's own deployment in an AWS account, as one CloudFormation template (`kopter deploy
template`): the queues and tables `kopter bootstrap` would make, Redis, the processes on ECS
Fargate scaled on their queues, the read API's fronts, the web app on S3 and CloudFront, the
Cognito user pool and the alarms. Plain data: nothing here calls AWS but ``stack``, which reads
a deployed stack's outputs and fills its web bucket."""

from __future__ import annotations

from typing import Any

from kopter.deploy import alarms, compute, datastores, edge, network, parameters, scaling, webapp
from kopter.deploy.cfn import Template, ref
from kopter.deploy.groups import WorkerGroup


def template(groups: tuple[WorkerGroup, ...], api_document: dict[str, Any]) -> dict[str, Any]:
    """The stack, with a worker service per group; ``api_document`` is the read API's OpenAPI
    document for API Gateway (`kopter api openapi --api-gateway`, made with
    ``edge.gateway_settings()``, ``edge.BACKEND_URL`` and ``edge.USER_POOL_ARN``)."""
    t = Template("kopter: queues, tables, Redis, workers, beat, the read API, Flower, the web app")
    parameters.add(t)
    network.add(t)
    edge.add_parameters(t)
    compute.add_parameters(t, groups)
    datastores.add_queues(t)
    datastores.add_tables(t)
    datastores.add_redis(t)
    processes = compute.processes(groups)
    compute.add_secrets(t)
    compute.add_roles(t, processes)
    compute.add_tasks(t, processes)
    compute.add_services(t, processes)
    for group in groups:
        scaling.add_worker_scaling(t, group)
    edge.add_load_balancer(t)
    edge.add_cognito(t)
    edge.add_api_gateway(t, api_document)
    webapp.add(t)
    alarms.add(t)
    edge.add_outputs(t)
    t.output("ClusterName", ref("Cluster"), "The ECS cluster")
    t.output(
        "OperatorTaskDefinition",
        ref("OperatorTask"),
        "`kopter bootstrap` (or any kopter command, as its command) on demand: aws ecs run-task",
    )
    t.output("ServiceSecurityGroup", ref("ServiceSecurityGroup"), "... with this group")
    t.output(
        "PrivateSubnetIds",
        {"Fn::Join": [",", ref("PrivateSubnetIds")]},
        "... in these subnets",
    )
    t.output("LogGroup", ref("Logs"), "Every process's log")
    return t.document()
