"""Keystile's sidecar: the runtime and the domain shared with the admin half.

``admin`` may import from here; nothing here imports ``admin``.
"""
