"""Prove a zkc generation on a Ray cluster (docs/distributed.md in the zkc repository)."""
