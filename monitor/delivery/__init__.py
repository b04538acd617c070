"""Getting events out of the process: Kafka (with a disk spool) or local files.

Sinks carry :class:`~monitor.delivery.record.Record` s, opaque bytes with a topic and a key;
what the bytes mean is :mod:`monitor.events`' business, so a sink never parses an event.
"""
