"""Readers: public pages, operator API, lifecycle rules, import and export."""
