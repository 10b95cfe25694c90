"""Kafka client wrappers: configuration, producer, admin, serializers and the local broker.

This package is the only place that imports ``confluent_kafka`` or builds faust's broker
configuration; everything else passes settings in and gets plain Python objects back.
"""
