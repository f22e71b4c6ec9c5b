"""The customers' web app: a private S3 bucket read only by CloudFront (origin access control).
`kopter deploy web --stack NAME` fills it: the app of `kopter web build`, its config.json made
from this stack's outputs."""

from __future__ import annotations

from kopter.deploy.cfn import Template, get_att, private_bucket, ref, skip, sub

# AWS's managed CloudFront policies: cache by path only, and the usual security headers.
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"


def add(t: Template) -> None:
    t.add(
        "WebBucket",
        "AWS::S3::Bucket",
        {**private_bucket(), "VersioningConfiguration": {"Status": "Enabled"}},
        metadata=skip(("CKV_AWS_18", "access logs are the operator's choice (a bucket of theirs)")),
    )
    t.add(
        "WebOriginAccessControl",
        "AWS::CloudFront::OriginAccessControl",
        {
            "OriginAccessControlConfig": {
                "Name": sub("${AWS::StackName}-web"),
                "OriginAccessControlOriginType": "s3",
                "SigningBehavior": "always",
                "SigningProtocol": "sigv4",
            }
        },
    )
    t.add(
        "WebDistribution",
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": {
                "Enabled": True,
                "Comment": sub("kopter ${Prefix}: the web app"),
                "DefaultRootObject": "index.html",
                "HttpVersion": "http2and3",
                "PriceClass": "PriceClass_100",
                "Origins": [
                    {
                        "Id": "web",
                        "DomainName": get_att("WebBucket", "RegionalDomainName"),
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                        "OriginAccessControlId": ref("WebOriginAccessControl"),
                    }
                ],
                "DefaultCacheBehavior": {
                    "TargetOriginId": "web",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "CachePolicyId": CACHING_OPTIMIZED,
                    "ResponseHeadersPolicyId": SECURITY_HEADERS,
                    "Compress": True,
                },
                "ViewerCertificate": {"CloudFrontDefaultCertificate": True},
            }
        },
        metadata=skip(
            ("CKV_AWS_86", "access logs are the operator's choice (a bucket of theirs)"),
            ("CKV_AWS_68", "a WAF web ACL is the operator's choice: the app is static files"),
            ("CKV_AWS_174", "the default *.cloudfront.net certificate; a domain of the "
             "operator's with TLS 1.2 at least is theirs to add"),
        ),
    )  # fmt: skip
    t.add(
        "WebBucketPolicy",
        "AWS::S3::BucketPolicy",
        {
            "Bucket": ref("WebBucket"),
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "CloudFrontReads",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudfront.amazonaws.com"},
                        "Action": "s3:GetObject",
                        "Resource": sub("${WebBucket.Arn}/*"),
                        "Condition": {
                            "StringEquals": {
                                "AWS:SourceArn": sub(
                                    "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:"
                                    "distribution/${WebDistribution}"
                                )
                            }
                        },
                    },
                ],
            },
        },
    )
    t.output("WebUrl", sub("https://${WebDistribution.DomainName}/"), "The web app")
    t.output("WebBucketName", ref("WebBucket"), "`kopter deploy web` uploads the app here")
    t.output("WebDistributionId", ref("WebDistribution"), "... and invalidates this")
