"""CloudTrail ingest: from a log object in a customer's bucket to their audit log.

- ``objects``: which S3 keys are CloudTrail log files, and whose;
- ``notifications``: the AWS messages that announce new log files (S3, SNS, CloudTrail's own);
- ``bridge``: drains the raw notification queue, turning each log file into an ingest job;
- ``records``: decodes a log file and normalizes each record into an audit-log item;
- ``ingest``: one log object, end to end, exactly once;
- ``query``: searching a tenant's audit log.
"""
