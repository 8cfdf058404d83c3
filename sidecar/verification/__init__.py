"""Verification: from a presented credential to a verified identity (verifier, cache,
invalidation, wrong-secret limits, usage, argon2 hashing, issuing); which reported leaked
tokens are real, and the report limit (``leaks``).
"""
