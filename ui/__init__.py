"""Adapters over the `qa` service: the HTTP API and the web chat."""
