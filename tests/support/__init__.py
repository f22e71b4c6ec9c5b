"""What the tests share and nothing collects: the real samples and files made from them, the
processes and proxies they run beside kopter, the IAM evaluator, the isolation checker."""
