"""Learned image compression: real bitstreams (the compress task)."""
