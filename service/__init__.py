"""Letterbox: a subscriber and mailing-list microservice."""
