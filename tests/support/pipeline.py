"""What `kopter dev` shows of the demo's pipelines when they work (kopter/dev.py's
`show_pipeline`): the lines tests/test_dev.py expects of the local stack and tests/test_image.py
of the stack run from the image."""

from __future__ import annotations

import re

# The account check on the worker, permission by permission (columns aligned to the longest
# name); bob's calls in `kopter audit`, from the log files through S3's notifications and the
# ingest worker; the sample price list in `kopter prices`; the story's past hours costed, and the
# notifications of it all.
SHOWN = (
    r"assume-role +yes",
    r"DescribeInstances:us-east-1 +yes +ok \(3 seen\)",
    r"CreateKopterSnapshots:us-east-1 +yes +allowed \(dry run\)",
    r"ListTrailLogs +yes",
    r"ReadTrailLogs +yes +s3://",
    re.escape("AuthorizeSecurityGroupIngress  arn:aws:iam::111111111111:user/bob  203.0.113.10  -"),
    re.escape(
        "DeleteTrail                    arn:aws:iam::111111111111:user/bob  203.0.113.10  Access"
    ),
    re.escape("m5.large       Linux  Dedicated  No License required  NA        0.106  "),
    re.escape("history    those 30 hours cost "),
    r"cost-jump +EC2 cost [\d.]+ USD at \d\d:00 UTC",
    r"high +finding +Security group ingress opened to the whole internet",
    r"high +finding +Attempt to stop CloudTrail",
)


def assert_pipeline_shown(output: str) -> None:
    for expected in SHOWN:
        assert re.search(expected, output), f"{expected!r} not in:\n{output}"
