"""The cost graph: what each tenant's fleet cost, hour by hour."""
