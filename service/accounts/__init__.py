"""Operator accounts: users with a role, their Argon2id passwords and the sign-in throttle."""
