"""What can go wrong with a payment, as one tree (worded by each face: the manage page's
``web/manage/wording.py``, the API's ``web/errors.py``, the CLI's ``cli/messages.py``).

    PaymentError
    ├── PaymentsUnavailable   Stripe could not be reached or answered with an error of its own
    ├── PaymentDeclined       the card was declined (``code``, Stripe's ``message``)
    ├── PaymentRefused        Stripe refused the request (a refund of a failed payment, …)
    └── BadSignature          a webhook whose signature or timestamp does not check out

Stripe's own exceptions are translated in ``gateway.py`` and ``webhooks.py``, chained.
"""

from __future__ import annotations


class PaymentError(Exception):
    """Base of every payment failure; ``message`` is safe to show (no keys, no card data)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class PaymentsUnavailable(PaymentError):
    """Stripe did not answer (network, timeout, its own 5xx) or refused our key."""


class PaymentDeclined(PaymentError):
    """The customer's card was declined; they may try another."""


class PaymentRefused(PaymentError):
    """Stripe refused the request itself (it will refuse it again)."""


class BadSignature(PaymentError):
    """A webhook not signed with our secret, or signed too long ago."""
