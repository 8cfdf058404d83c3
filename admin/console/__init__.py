"""The web console (spec section 8): static pages over the admin API, with a session cookie."""
