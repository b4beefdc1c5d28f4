"""The web tier: the admin JSON API (``api``), the customer manage page (``manage``) and
Google sign-in (``signin``).

Everything HTTP lives here: the app factory (``app``), shared schemas and dependencies
(``schemas``, ``deps``), the one place errors become HTTP answers (``errors``) and the uvicorn
entry point (``server``). Routes parse the request, call one service in ``calsync.bookings``
or ``calsync.sync`` and map its result; they never hold business rules.
"""
