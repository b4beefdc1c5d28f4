"""Payments through Stripe: the reschedule fee charged before a change applies, cancellation
refunds, and Stripe's webhooks (README "Payments (Stripe)").

- ``gateway.py``: the Stripe API behind a few typed calls (PaymentIntents, Refunds), each
  write with an idempotency key; Stripe's exceptions become ``errors.py``'s tree here.
- ``webhooks.py``: a webhook's signature and timestamp checked, the event as a typed value.
- ``service.py``: what calsync does with them: start a paid reschedule (the intent for an
  awaiting-payment change), settle it once paid (apply the change exactly once), release
  expired holds, pay due refunds, list payments.

The pure arithmetic (fee, refund, minor units and rounding) stays in ``policy/``; the rows in
``store/models.py`` (``Payment``, ``PaymentHold``); recording a change as awaiting payment is
the change engine's (``bookings/changes.py``, ``bookings/paid_changes.py``).
"""
