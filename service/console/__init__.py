"""The operator console under ``/console/``: server-rendered pages for the people who run the newsletter."""
