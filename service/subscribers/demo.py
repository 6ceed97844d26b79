"""A sample taxonomy for a multi-agency safeguarding partnership, so a first start shows a real form.

Loading it twice changes nothing, and it never overwrites agencies, roles or
lists an operator has already made with the same slugs.
"""

from __future__ import annotations

from ..db.pool import Database

AGENCIES = (
    ("childrens-social-care", "Children's social care"),
    ("adult-social-care", "Adult social care"),
    ("police", "Police"),
    ("health", "Health"),
    ("education", "Education"),
    ("early-years", "Early years"),
    ("probation", "Probation"),
    ("youth-justice", "Youth justice"),
    ("housing", "Housing"),
    ("voluntary-sector", "Voluntary and community sector"),
)
ROLES = (
    ("practitioner", "Practitioner"),
    ("operational-manager", "Operational manager"),
    ("strategic-lead", "Strategic lead"),
    ("designated-safeguarding-lead", "Designated safeguarding lead"),
)
LISTS = (
    ("newsletter", "Partnership newsletter", "The monthly newsletter: news, learning and resources."),
    ("training", "Training and events", "Multi-agency training courses, briefings and events as they are announced."),
    ("practice-reviews", "Practice review briefings",
     "Learning from child safeguarding practice reviews and rapid reviews."),
)


async def load_demo(db: Database) -> None:
    """Add the sample agencies, roles and public lists (``letterbox demo``); idempotent."""
    async with db.transaction() as conn:
        await conn.execute(db.q["demo-agencies"], [a[0] for a in AGENCIES], [a[1] for a in AGENCIES])
        await conn.execute(db.q["demo-roles"], [r[0] for r in ROLES], [r[1] for r in ROLES])
        await conn.execute(db.q["demo-lists"], [x[0] for x in LISTS], [x[1] for x in LISTS], [x[2] for x in LISTS])
