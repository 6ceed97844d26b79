"""Set-based test data: lists, taxonomy and confirmed readers, written straight into the database."""

from __future__ import annotations

import asyncpg


async def seed_taxonomy(conn: asyncpg.Connection) -> None:
    """Two agencies, two roles, two lists (news, training)."""
    await conn.execute(
        """
        INSERT INTO agencies (slug, name) VALUES ('police', 'Police'), ('health', 'Health') ON CONFLICT DO NOTHING;
        INSERT INTO roles (slug, name) VALUES ('practitioner', 'Practitioner'), ('lead', 'Strategic lead')
            ON CONFLICT DO NOTHING;
        INSERT INTO lists (slug, name) VALUES ('news', 'Newsletter'), ('training', 'Training')
            ON CONFLICT DO NOTHING;
        """
    )


async def seed_readers(
    database_url: str, count: int, *, lists: tuple[str, ...] = ("news",), prefix: str = "reader"
) -> list[str]:
    """``count`` active readers confirmed on ``lists``; returns their addresses in id order."""
    conn = await asyncpg.connect(database_url)
    try:
        await seed_taxonomy(conn)
        rows = await conn.fetch(
            """
            INSERT INTO subscribers (email, name, agency, role, status, confirmed_at)
            SELECT $1 || g || '@example.org', 'Reader ' || g,
                   CASE WHEN g % 2 = 0 THEN 'police' ELSE 'health' END, 'practitioner', 'active', now()
            FROM generate_series(1, $2) AS g
            RETURNING id, email
            """,
            prefix,
            count,
        )
        await conn.execute(
            """
            INSERT INTO subscriptions (list_id, subscriber_id, status)
            SELECT l.id, s.id, 'confirmed' FROM lists l, unnest($1::bigint[]) AS s(id) WHERE l.slug = ANY ($2::text[])
            """,
            [r["id"] for r in rows],
            list(lists),
        )
        return [r["email"] for r in rows]
    finally:
        await conn.close()
