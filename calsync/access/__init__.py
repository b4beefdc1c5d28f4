"""Owners signing in to the console: one-time links by email (``sign_in``) and server-side
sessions (``sessions``). No FastAPI here; ``web/console/`` turns these into pages and cookies."""
