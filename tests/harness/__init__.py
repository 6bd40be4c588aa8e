"""Test harness: real servers started on loopback for the integration and e2e tiers."""
