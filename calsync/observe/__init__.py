"""What an operator sees of a running calsync: Prometheus metrics and structured logs.

Below ``sync`` in the layers: the lower layers record their events here, so it imports nothing
of calsync but ``config`` and ``store``.
"""
