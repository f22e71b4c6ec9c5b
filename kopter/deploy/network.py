"""The network the stack runs in, and who may talk to whom in it.

The VPC and its subnets are the operator's, given as parameters: an account that runs kopter has
its own addressing, routes, NAT and peering, and every task needs a way out to AWS's APIs in
every region and to customers' accounts (a NAT gateway, or endpoints plus NAT for the rest),
which a stack of kopter's would only duplicate. Tasks and Redis sit in the private subnets, the
load balancer in the public ones.
"""

from __future__ import annotations

from typing import Any

from kopter.deploy.cfn import Template, equals, not_, ref, sub
from kopter.deploy.datastores import REDIS_PORT

API_PORT = 8080
FLOWER_PORT = 5555
# Flower's listener on the load balancer: HTTPS on a port of its own, for FlowerAllowedCidr only.
FLOWER_LISTENER_PORT = 8443


def _rule(protocol_port: int, description: str, **peer: Any) -> dict[str, Any]:
    return {
        "IpProtocol": "tcp",
        "FromPort": protocol_port,
        "ToPort": protocol_port,
        "Description": description,
        **peer,
    }


def add(t: Template) -> None:
    t.parameter("VpcId", Type="AWS::EC2::VPC::Id", Description="The VPC kopter runs in")
    t.parameter(
        "PrivateSubnetIds",
        Type="List<AWS::EC2::Subnet::Id>",
        Description="Subnets of the tasks and Redis (two zones or more, with a way out: NAT)",
    )
    t.parameter(
        "PublicSubnetIds",
        Type="List<AWS::EC2::Subnet::Id>",
        Description="Subnets of the internet-facing load balancer (two zones or more)",
    )
    t.parameter(
        "FlowerAllowedCidr",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$",
        Description="Addresses that may reach Flower on the load balancer's port "
        f"{FLOWER_LISTENER_PORT} (empty: none)",
    )
    t.condition("HasFlowerCidr", not_(equals(ref("FlowerAllowedCidr"), "")))
    vpc = ref("VpcId")
    t.add(
        "ServiceSecurityGroup",
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": sub("kopter ${Prefix}: its tasks"),
            "VpcId": vpc,
            "SecurityGroupEgress": [
                _rule(443, "AWS APIs, customers' accounts, the price list", CidrIp="0.0.0.0/0"),
                _rule(REDIS_PORT, "Redis", DestinationSecurityGroupId=ref("RedisSecurityGroup")),
            ],
        },
    )
    t.add(
        "RedisSecurityGroup",
        "AWS::EC2::SecurityGroup",
        {"GroupDescription": sub("kopter ${Prefix}: Redis"), "VpcId": vpc},
    )
    t.add(
        "LoadBalancerSecurityGroup",
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": sub("kopter ${Prefix}: the load balancer"),
            "VpcId": vpc,
            "SecurityGroupIngress": [
                _rule(443, "the read API, to anyone (it asks every caller who they are)",
                      CidrIp="0.0.0.0/0"),
            ],
            "SecurityGroupEgress": [
                _rule(port, what, DestinationSecurityGroupId=ref("ServiceSecurityGroup"))
                for port, what in ((API_PORT, "the read API"), (FLOWER_PORT, "Flower"))
            ],
        },
    )  # fmt: skip
    ingress = {
        "RedisFromTasks": ("RedisSecurityGroup", REDIS_PORT, "ServiceSecurityGroup", "tasks"),
        "ApiFromLoadBalancer": (
            "ServiceSecurityGroup",
            API_PORT,
            "LoadBalancerSecurityGroup",
            "the load balancer",
        ),
        "FlowerFromLoadBalancer": (
            "ServiceSecurityGroup",
            FLOWER_PORT,
            "LoadBalancerSecurityGroup",
            "the load balancer",
        ),
    }
    for name, (group, port, source, what) in ingress.items():
        t.add(
            name,
            "AWS::EC2::SecurityGroupIngress",
            {"GroupId": ref(group), **_rule(port, what, SourceSecurityGroupId=ref(source))},
        )
    t.add(
        "FlowerFromAllowedCidr",
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": ref("LoadBalancerSecurityGroup"),
            **_rule(FLOWER_LISTENER_PORT, "Flower, for FlowerAllowedCidr",
                    CidrIp=ref("FlowerAllowedCidr")),
        },
        condition="HasFlowerCidr",
    )  # fmt: skip
