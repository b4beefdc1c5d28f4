"""Booking packages, links, event types and availability, adoption, owner-side changes and
the change engine."""
