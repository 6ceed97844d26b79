"""Database access: pool, migrations, named queries and the embedded PostgreSQL."""
