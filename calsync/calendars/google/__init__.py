"""The Google Calendar provider: the provider, ICS <-> Google event conversion, accounts."""
