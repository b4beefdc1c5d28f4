"""Routes of the admin JSON API, one module per noun, and what they share (``deps``)."""
