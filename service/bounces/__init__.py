"""Bounces and complaints: parsing, classification, receivers, webhooks and policy."""
