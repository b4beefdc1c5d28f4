"""The web tier: the admin JSON API (and, later, the customer manage page).

Everything HTTP lives here: the app factory (``app``), request/response schemas
(``schemas``), the one place errors become HTTP answers (``errors``), routes split by noun
(``routes``) and the uvicorn entry point (``server``). Routes parse the request, call one
service in ``calsync.sync`` and map its result; they never hold business rules.
"""
