"""Segments: the filter language, compiled to SQL placeholders, and saved segments."""
