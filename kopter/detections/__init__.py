"""Detections: rules that judge one CloudTrail record as it is written.

``rules`` holds what every rule is (``DetectionRule``) and the index that tests a record only
against the rules that could match it (``RuleSet``); ``sigma`` loads rules in the community's
Sigma format (SigmaHQ's CloudTrail rules ship vendored beside it) through pySigma, which parses;
``fields`` and ``values`` are Sigma's matching semantics, which kopter evaluates itself.
"""
