"""The public booking page ``/b/<owner>/<event type>``: customers book a package themselves."""
