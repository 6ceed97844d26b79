"""Editions: posting, idempotency and fan-out into deliveries."""
