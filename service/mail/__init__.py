"""Composing mail: the MIME composer for edition copies and system mails, and addresses as sent.

Below both delivery (which sends what is composed here) and subscribers (whose confirmation
mails are composed here), so neither has to import the other.
"""
