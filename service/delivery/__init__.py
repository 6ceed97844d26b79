"""Delivery: worker loop, leases, MIME composition, transports and DKIM."""
