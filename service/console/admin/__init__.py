"""The console's admin pages: users, API keys and the audit log."""
