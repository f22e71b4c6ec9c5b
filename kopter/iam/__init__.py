"""IAM policies and CloudFormation that kopter generates: the role a customer creates for kopter
(``customer``), the raw queue's policy that lets customers' buckets and topics notify kopter
(``raw_queue``), the roles of kopter's own processes (``own``) and the confinement of a
customer's browser (``browser``). Plain data: nothing here calls AWS."""
