"""Customers' EC2 fleets: what runs where (``instances``), and what changed (``describer``)."""
