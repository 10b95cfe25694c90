"""Avro schemas (``*.avsc``) for what travels between stages, and their codecs."""
