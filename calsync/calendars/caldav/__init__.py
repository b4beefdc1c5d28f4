"""The CalDAV provider: the provider itself, the wire boundary (errors, requests) and discovery."""
