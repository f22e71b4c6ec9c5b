"""AWS's public list prices in us-east-1 that kopter's own bill is made of (`kopter deploy cost`),
each with where it was read and when. On demand, no free tier deducted (the free tiers are
listed in ``FREE_TIERS``: they are per account, and an account running kopter has other uses).

No live web is reachable from here: each price was read in a stored copy of a public page on
2026-12-06 (``READ``). AWS's own pricing pages draw most of their tables with a script, so a
stored copy of them often holds no number; where it did not, the figure is from a page that
quotes AWS's (its date given), and ``confirmed`` is False where only such a page had it.
"""

from __future__ import annotations

from dataclasses import dataclass

READ = "2026-12-06"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str  # what one ``usd`` buys
    url: str
    stated: str  # what the page says of its date, or "undated"
    confirmed: bool = True  # False: AWS's own page not found with the figure


FARGATE_VCPU_HOUR = Price(
    0.04048,
    "vCPU-hour (Linux/x86)",
    "https://aws.amazon.com/fargate/pricing/ (drawn by script; figure from "
    "https://www.vantage.sh/blog/fargate-pricing and "
    "https://www.factualminds.com/blog/amazon-fargate-ecs-task-pricing-2026/)",
    "factualminds: 'as of June 2026'",
    confirmed=False,
)
FARGATE_GB_HOUR = Price(
    0.004445,
    "GB-hour of memory (Linux/x86)",
    FARGATE_VCPU_HOUR.url,
    FARGATE_VCPU_HOUR.stated,
    confirmed=False,
)
FARGATE_ARM_VCPU_HOUR = Price(
    0.03238,
    "vCPU-hour (Linux/ARM)",
    "https://www.vantage.sh/blog/fargate-pricing",
    "undated",
    confirmed=False,
)
FARGATE_ARM_GB_HOUR = Price(
    0.00356,
    "GB-hour of memory (Linux/ARM)",
    FARGATE_ARM_VCPU_HOUR.url,
    "undated",
    confirmed=False,
)
SQS_MILLION = Price(
    0.40,
    "million requests (standard queue; each 64 KB of a request's payload is one request)",
    "https://www.factualminds.com/blog/amazon-sqs-pricing-64kb-rule-fifo-vs-standard/",
    "2026-06-13",
    confirmed=False,
)
DYNAMODB_WRITE_MILLION = Price(
    0.625,
    "million write request units (on demand; 1 KB each)",
    "https://airbyte.com/data-engineering-resources/dynamodb-pricing (after AWS's 50 % cut "
    "of November 2024)",
    "2025-07-21",
    confirmed=False,
)
DYNAMODB_READ_MILLION = Price(
    0.125,
    "million read request units (on demand; 4 KB strongly consistent, 8 KB eventually)",
    DYNAMODB_WRITE_MILLION.url,
    DYNAMODB_WRITE_MILLION.stated,
    confirmed=False,
)
DYNAMODB_GB_MONTH = Price(
    0.25,
    "GB-month stored (Standard table class, indexes included)",
    "https://aws.amazon.com/dynamodb/pricing/",
    "undated ('prices start from $0.25 per GB-month')",
)
DYNAMODB_PITR_GB_MONTH = Price(
    0.20,
    "GB-month of point-in-time recovery (the table's size)",
    "https://finops.com.py/services/dynamodb/backups",
    "undated",
    confirmed=False,
)
S3_PUT_THOUSAND = Price(
    0.005,
    "1,000 PUT, COPY, POST or LIST requests (S3 Standard)",
    "https://c3x.dev/blog/s3-request-fees-explained",
    "undated",
    confirmed=False,
)
S3_GET_THOUSAND = Price(
    0.0004, "1,000 GET requests (S3 Standard)", S3_PUT_THOUSAND.url, "undated", confirmed=False
)
CLOUDFRONT_GB = Price(
    0.085,
    "GB out to the internet (United States, Mexico, Canada; first 10 TB)",
    "https://aws.amazon.com/cloudfront/pricing",
    "undated",
)
CLOUDFRONT_HTTPS_TEN_THOUSAND = Price(
    0.0100,
    "10,000 HTTPS requests (North America, Europe)",
    "https://wring.co/blog/aws-cloudfront-pricing-guide",
    "undated",
    confirmed=False,
)
ELASTICACHE_NODE_HOUR = Price(
    0.032,
    "node-hour of cache.t4g.small (the template's RedisNodeType default), on demand",
    "https://aws.amazon.com/elasticache/pricing/ (node prices drawn by script; not found "
    "there in a copy: the figure is from a public pricing table in a repository the search "
    "index names by content only)",
    "undated",
    confirmed=False,
)
ALB_HOUR = Price(
    0.0225,
    "Application Load Balancer-hour",
    "https://cloud-horizons.com/blog/alb-the-line-item-nobody-watches/",
    "2026-05-08",
    confirmed=False,
)
ALB_LCU_HOUR = Price(0.008, "LCU-hour", ALB_HOUR.url, ALB_HOUR.stated, confirmed=False)
API_GATEWAY_REST_MILLION = Price(
    3.50,
    "million REST API calls (first 333 million a month)",
    "https://docs.aws.amazon.com/whitepapers/latest/"
    "best-practices-api-gateway-private-apis-integration/cost-optimization.html",
    "undated (AWS whitepaper)",
)
CLOUDWATCH_ALARM_METRIC_MONTH = Price(
    0.10,
    "standard-resolution alarm metric-month (a metric math alarm is billed per metric in it)",
    "https://c3x.dev/resources/aws/aws_cloudwatch_metric_alarm",
    "undated",
    confirmed=False,
)
CLOUDWATCH_METRIC_MONTH = Price(
    0.30,
    "custom metric-month (first 10,000; Container Insights' metrics are custom metrics)",
    "https://github.com/nishinoshake/aws-rough/issues/37 (transcribing "
    "https://aws.amazon.com/jp/cloudwatch/pricing/)",
    "2022-04-29",
    confirmed=False,
)
CLOUDWATCH_LOGS_GB = Price(
    0.50,
    "GB of logs ingested (Standard log class)",
    "https://c3x.dev/blog/cloudwatch-logs-cost-optimization",
    "'us-east-1, June 2026'",
    confirmed=False,
)
CLOUDWATCH_LOGS_GB_MONTH = Price(
    0.03,
    "GB-month of logs stored",
    CLOUDWATCH_LOGS_GB.url,
    CLOUDWATCH_LOGS_GB.stated,
    confirmed=False,
)
SECRET_MONTH = Price(
    0.40,
    "secret-month (Secrets Manager)",
    "https://hivebook.wiki/wiki/aws-secrets-manager-rotated-secrets-dynamic-db-credentials-kms",
    "undated",
    confirmed=False,
)
COGNITO_MAU = Price(
    0.015,
    "monthly active user (Essentials, the default plan of a new user pool, above 10,000)",
    "https://raw.githubusercontent.com/api-evangelist/amazon-cognito/refs/heads/main/plans/"
    "amazon-cognito-plans-pricing.yml (transcribing https://aws.amazon.com/cognito/pricing/); "
    "the plan default: https://docs.aws.amazon.com/cognito/latest/developerguide/"
    "cognito-sign-in-feature-plans.html",
    "2026-09-20",
    confirmed=False,
)
LAMBDA_MILLION = Price(
    0.20,
    "million requests",
    "https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html",
    "undated (AWS whitepaper)",
)
LAMBDA_GB_SECOND = Price(
    0.0000166667,
    "GB-second (x86; the whitepaper rounds it to $0.00001667)",
    "https://cloudchipr.com/blog/aws-lambda-pricing",
    "2024",
    confirmed=False,
)

# Not deducted above: each is per account (or organization) and month.
FREE_TIERS = (
    "SQS: 1 million requests",
    "DynamoDB: 25 GB stored",
    "CloudFront: 1 TB out and 10 million requests",
    "Cognito Essentials: 10,000 monthly active users",
    "Lambda: 1 million requests and 400,000 GB-seconds",
    "CloudWatch: 10 alarm metrics, 10 custom metrics, 5 GB of logs",
)
