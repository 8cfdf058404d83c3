"""Expiry and leak notices to the ``[[notify]]`` webhooks (spec section 10, docs/notify.md)."""
