"""The runtime that claims steps from a pool's stream, runs them, and completes them.

Only trimtab.queue talks to Redis; the modules here decide what a step sends and
records, so most of them are pure and tested without a server.
"""
