"""The customer's manage page (/m/<token>): routes, forms, views, wording, rendering, limits."""
