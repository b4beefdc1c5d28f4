"""Google sign-in for owners: the OAuth flow and its routes."""
