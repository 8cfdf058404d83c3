"""Test kits: the real parts (Redis, proxy, admin app, processes, fronts, image) the tests drive."""
