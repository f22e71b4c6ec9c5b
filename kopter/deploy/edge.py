"""How callers reach kopter: the load balancer in front of the read API and Flower, the API
Gateway REST API as the other front, and the Cognito user pool whose users the API trusts.

Front ``alb``: browsers call the load balancer at ``ApiDomainName``; `kopter api` checks each
token itself (``KOPTER_API_AUTH=jwt``) against the pool's keys at its JWKS URL, with the pool as
issuer and the app client as audience. Front ``apigateway``: browsers call API Gateway, whose
Cognito authorizer checks the token; each route (``kopter api openapi --api-gateway``) passes the
caller's ``sub`` and the gateway secret on to the load balancer, and `kopter api` runs in
``gateway`` mode, so a request that reached it another way has no identity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from kopter.deploy.cfn import Template, equals, get_att, if_, mark, ref, resolved, skip, sub
from kopter.deploy.network import API_PORT, FLOWER_LISTENER_PORT, FLOWER_PORT
from kopter.settings import Settings, load

STAGE = "live"
# Where the gateway document names the pool and the web app's origin.
USER_POOL_ARN = (
    f"arn:{mark('AWS::Partition')}:cognito-idp:{mark('AWS::Region')}:"
    f"{mark('AWS::AccountId')}:userpool/{mark('UserPool')}"
)
WEB_ORIGIN = f"https://{mark('WebDistribution.DomainName')}"
# ... and where API Gateway reaches `kopter api`: the load balancer.
BACKEND_URL = f"https://{mark('ApiDomainName')}"
HOSTNAME = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def gateway_settings() -> Settings:
    """The settings `kopter api openapi --api-gateway` makes the stack's document with: the web
    app's origin allowed by CORS."""
    return replace(load({}), api_cors_origins=(WEB_ORIGIN,))


def add_parameters(t: Template) -> None:
    t.parameter(
        "Front",
        Type="String",
        Default="alb",
        AllowedValues=["alb", "apigateway"],
        Description="How browsers reach the read API: the load balancer, or API Gateway with a "
        "Cognito authorizer in front of it",
    )
    t.condition("UseApiGateway", equals(ref("Front"), "apigateway"))
    t.parameter(
        "ApiDomainName",
        Type="String",
        AllowedPattern=HOSTNAME,
        Description="The load balancer's name in DNS (point it at the LoadBalancerDnsName "
        "output), covered by ApiCertificateArn",
    )
    t.parameter(
        "ApiCertificateArn",
        Type="String",
        AllowedPattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$",
        Description="The ACM certificate of ApiDomainName, in the stack's region",
    )
    t.parameter(
        "CognitoDomainPrefix",
        Type="String",
        AllowedPattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        Description="The prefix of the user pool's hosted sign-in pages "
        "(https://PREFIX.auth.REGION.amazoncognito.com)",
    )


def add_load_balancer(t: Template) -> None:
    t.add(
        "LoadBalancer",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {
            "Type": "application",
            "Scheme": "internet-facing",
            "Subnets": ref("PublicSubnetIds"),
            "SecurityGroups": [ref("LoadBalancerSecurityGroup")],
            "LoadBalancerAttributes": [
                {"Key": "deletion_protection.enabled", "Value": "true"},
                {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
            ],
        },
        metadata=skip(("CKV_AWS_91", "access logs are the operator's choice (a bucket of theirs)")),
    )
    for name, port, listener_port, health in (
        ("Api", API_PORT, 443, "/healthz"),
        ("Flower", FLOWER_PORT, FLOWER_LISTENER_PORT, "/healthcheck"),
    ):
        t.add(
            name + "TargetGroup",
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            {
                "TargetType": "ip",
                "Protocol": "HTTP",
                "Port": port,
                "VpcId": ref("VpcId"),
                "HealthCheckPath": health,
                "Matcher": {"HttpCode": "200"},
                "TargetGroupAttributes": [
                    {"Key": "deregistration_delay.timeout_seconds", "Value": "30"}
                ],
            },
        )
        t.add(
            name + "Listener",
            "AWS::ElasticLoadBalancingV2::Listener",
            {
                "LoadBalancerArn": ref("LoadBalancer"),
                "Protocol": "HTTPS",
                "Port": listener_port,
                "SslPolicy": TLS_POLICY,
                "Certificates": [{"CertificateArn": ref("ApiCertificateArn")}],
                "DefaultActions": [
                    {"Type": "forward", "TargetGroupArn": ref(name + "TargetGroup")}
                ],
            },
        )


def add_cognito(t: Template) -> None:
    t.add(
        "UserPool",
        "AWS::Cognito::UserPool",
        {
            "UserPoolName": sub("${AWS::StackName}-users"),
            "UsernameAttributes": ["email"],
            "AutoVerifiedAttributes": ["email"],
            # The operator makes each tenant's users; a user's sub is the tenant id.
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireLowercase": True,
                    "RequireUppercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": False,
                    "TemporaryPasswordValidityDays": 7,
                }
            },
            "MfaConfiguration": "OPTIONAL",
            "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
            "AccountRecoverySetting": {
                "RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]
            },
            "DeletionProtection": "ACTIVE",
        },
    )
    app = sub("https://${WebDistribution.DomainName}/")
    t.add(
        "UserPoolClient",
        "AWS::Cognito::UserPoolClient",
        {
            "ClientName": "web",
            "UserPoolId": ref("UserPool"),
            "GenerateSecret": False,  # a browser keeps no secret: PKCE instead
            "AllowedOAuthFlowsUserPoolClient": True,
            "AllowedOAuthFlows": ["code"],
            "AllowedOAuthScopes": ["openid", "email"],
            "CallbackURLs": [app],
            "LogoutURLs": [app],
            "SupportedIdentityProviders": ["COGNITO"],
            "ExplicitAuthFlows": ["ALLOW_REFRESH_TOKEN_AUTH"],
            "PreventUserExistenceErrors": "ENABLED",
            "EnableTokenRevocation": True,
        },
    )
    t.add(
        "UserPoolDomain",
        "AWS::Cognito::UserPoolDomain",
        {"Domain": ref("CognitoDomainPrefix"), "UserPoolId": ref("UserPool")},
    )


def add_api_gateway(t: Template, document: dict[str, Any]) -> None:
    """``document``: `kopter api openapi --api-gateway` made with ``gateway_settings()``,
    ``BACKEND_URL`` and ``USER_POOL_ARN``."""
    body = resolved(document)
    t.add(
        "RestApi",
        "AWS::ApiGateway::RestApi",
        {
            "Name": sub("${AWS::StackName}-api"),
            "Body": body,
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "FailOnWarnings": True,
        },
        condition="UseApiGateway",
    )
    # A deployment is a snapshot of the API: a new document needs a new one.
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    deployment = f"ApiDeployment{version}"
    t.add(
        deployment,
        "AWS::ApiGateway::Deployment",
        {"RestApiId": ref("RestApi")},
        condition="UseApiGateway",
    )
    t.add(
        "ApiStage",
        "AWS::ApiGateway::Stage",
        {
            "RestApiId": ref("RestApi"),
            "DeploymentId": ref(deployment),
            "StageName": STAGE,
            "TracingEnabled": True,
            "Variables": {
                "kopterGatewaySecret": sub("{{resolve:secretsmanager:${GatewaySecret}}}")
            },
            "MethodSettings": [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "MetricsEnabled": True,
                    "ThrottlingBurstLimit": 200,
                    "ThrottlingRateLimit": 100,
                }
            ],
        },
        condition="UseApiGateway",
        metadata=skip(
            (
                "CKV_AWS_76",
                "access logs need the account-wide API Gateway role, a setting of the "
                "account, not of this stack; kopter api logs every request itself",
            ),
            ("CKV_AWS_120", "answers are per tenant: nothing to cache"),
        ),
    )


def api_url() -> dict[str, Any]:
    return if_(
        "UseApiGateway",
        sub("https://${RestApi}.execute-api.${AWS::Region}.amazonaws.com/" + STAGE),
        sub("https://${ApiDomainName}"),
    )


def add_outputs(t: Template) -> None:
    t.output("ApiUrl", api_url(), "The read API, as browsers call it")
    t.output(
        "LoadBalancerDnsName",
        get_att("LoadBalancer", "DNSName"),
        "Point ApiDomainName here (a CNAME or an alias record)",
    )
    t.output("UserPoolId", ref("UserPool"), "The user pool: each tenant's users")
    t.output("UserPoolClientId", ref("UserPoolClient"), "The web app's client id")
    t.output(
        "OidcIssuer",
        sub("https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"),
        "The issuer of the pool's tokens",
    )
