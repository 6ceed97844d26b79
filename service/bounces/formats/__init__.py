"""Readers for the formats bounce and complaint mail comes in.

Each reader takes a parsed message and returns ``Finding`` tuples (see ``finding.py``),
or None when the message is not in its format; ``service.bounces.parse`` tries them
in order, and ``classify.py`` decides what each finding is.
"""
