"""Agencies, roles and lists: the data that makes Letterbox fit any partnership.

``terms`` resolves the slugs people and operators send; ``routes`` is ``/v1/agencies``,
``/v1/roles`` and ``/v1/lists``.
"""
