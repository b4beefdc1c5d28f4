"""`calsync demo`: an embedded Radicale (or the Google fake) with an owner, event type and
booking ready."""
