"""Helpers the test suite uses to run real services (for now: a Kafka broker)."""
