"""What `kopter dev` shows of the demo's pipelines when they work (kopter/dev.py's
`show_pipeline`): the lines tests/test_dev.py expects of the local stack and tests/test_image.py
of the stack run from the image."""

from __future__ import annotations

import re

# The account check on the worker, permission by permission (columns aligned to the longest
# name); the demo's CloudTrail records in `kopter audit`; the sample price list in `kopter prices`.
SHOWN = (
    r"assume-role +yes",
    r"DescribeInstances:us-east-1 +yes +ok \(3 seen\)",
    r"CreateKopterSnapshots:us-east-1 +yes +allowed \(dry run\)",
    r"ListTrailLogs +yes",
    r"ReadTrailLogs +yes +s3://",
    re.escape("RunInstances  arn:aws:iam::111111111111:user/alice"),
    re.escape("DeleteTrail   arn:aws:iam::111111111111:user/bob    203.0.113.10  AccessDenied"),
    re.escape("m5.large       Linux  Dedicated  No License required  NA        0.106  "),
)


def assert_pipeline_shown(output: str) -> None:
    for expected in SHOWN:
        assert re.search(expected, output), f"{expected!r} not in:\n{output}"
