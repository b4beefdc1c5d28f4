"""Pure rules, no I/O: availability slots, cancel/reschedule policy decisions, fees.

Everything here is a function of plain values. Nothing reads a database, the network or the
clock (``now`` is always a parameter), and nothing imports from the rest of calsync.
"""
