"""The admin JSON API: routes by noun and their request/response schemas."""
