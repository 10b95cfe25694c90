"""The faust stream workers: app factory, one agent per stage, metrics and logs.

Nothing here runs at import time; ``consumers.stream.app.create_app`` builds an app from a
settings object. The agents only move data and call ``consumers.pipeline``.
"""
