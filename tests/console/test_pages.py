"""The console's read pages: what they show for seeded data, paging, bad ids and bad input."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.support.console import signed_in
from tests.support.console_data import post_edition, seed_console, sql

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def seeded(client: Client, settings: Settings, admin_headers: dict[str, str]) -> dict[str, Any]:
    """Six readers, an edition part-way through, bounces, a complaint, an unsubscribe; signed in as a viewer."""
    data = await seed_console(settings.database_url or "", client, admin_headers)
    await signed_in(client, settings, "viewer")
    return data


def cells(page: str, row_header: str) -> list[str]:
    """The text of the cells of the table row whose header is ``row_header``."""
    row = re.search(r"<tr><th scope=\"row\">" + re.escape(row_header) + r"</th>(.*?)</tr>", page, re.S)
    assert row, f"no row {row_header!r}"
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)]


def assert_error_page(response: Any, status: int, words: str) -> None:
    """A console page (not problem+json) with the status and a clear message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert words in response.text
    assert "Letterbox console" in response.text


async def test_dashboard_shows_progress_days_and_readers(client: Client, seeded: dict[str, Any]) -> None:
    page = await client.get("/console/")
    assert page.status_code == 200, page.text
    assert "Spring safeguarding update" in page.text
    assert "3 of 6 copies done (50%)" in page.text
    assert 'data-refresh="/console/progress"' in page.text
    # Today's row: two copies sent, two bounces (a reader's and a stranger's), one complaint, one unsubscribe.
    today = re.search(r"<tr><th scope=\"row\">(\w{3} \d\d \w{3} \d{4})</th>", page.text)
    assert today
    assert cells(page.text, today[1]) == ["2", "2", "1", "1"]
    # Three charts in SVG with a title and description, each followed by its figures.
    assert page.text.count('role="img"') == 4
    assert '<title id="sent-chart-title">Copies sent per day, last 30 days</title>' in page.text
    # Readers this month: three in each agency, six practitioners.
    month = re.findall(r"<tr><th scope=\"row\">(\w+ \d{4})</th>", page.text)[-1]
    assert cells(page.text, month) == ["3", "3"]
    fragment = await client.get("/console/progress")
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="in-flight"')


async def test_a_finished_day_is_counted_once_and_kept(client: Client, seeded: dict[str, Any],
                                                       settings: Settings) -> None:
    edition_id = seeded["edition_id"]
    await sql(settings, "UPDATE deliveries SET sent_at = now() - interval '3 days' WHERE edition_id = $1 "
                        "AND status = 'sent'", edition_id)
    await client.get("/console/")
    kept = await sql(settings, "SELECT sent FROM daily_figures WHERE day = (now() AT TIME ZONE 'UTC')::date - 3")
    assert kept == 2
    # A copy recorded later for that day does not change the kept figure: past days are not recounted.
    await sql(settings, "UPDATE deliveries SET status = 'sent', sent_at = now() - interval '3 days' "
                        "WHERE edition_id = $1 AND status = 'queued' AND subscriber_id = $2",
              edition_id, seeded["subscriber_ids"][5])
    await client.get("/console/")
    assert await sql(settings, "SELECT sent FROM daily_figures WHERE day = (now() AT TIME ZONE 'UTC')::date - 3") == 2
    assert await sql(settings, "SELECT count(*) FROM daily_figures") == 29  # every finished day, once


async def test_a_finished_month_is_counted_once_and_kept(client: Client, seeded: dict[str, Any],
                                                         settings: Settings) -> None:
    # Two police readers joined three months ago; one of them left last month.
    police = seeded["subscriber_ids"][1:4:2]
    await sql(settings, "UPDATE subscribers SET confirmed_at = now() - interval '3 months' WHERE id = ANY ($1)", police)
    await sql(settings, "UPDATE subscribers SET status = 'unsubscribed', updated_at = now() - interval '1 month' "
                        "WHERE id = $1", police[0])
    page = (await client.get("/console/")).text
    months = re.findall(r"<tr><th scope=\"row\">(\w+ \d{4})</th>", page)
    assert len(months) == 24  # twelve months, by organisation and by role
    by_agency = [cells(page, m) for m in months[:12]]
    # Columns: Health, Police; the month under way counts the readers active now.
    assert by_agency[-4] == ["0", "2"] and by_agency[-3] == ["0", "2"] and by_agency[-2] == ["0", "1"]
    assert by_agency[-1] == ["3", "2"]
    assert await sql(settings, "SELECT count(DISTINCT month) FROM monthly_readers") == 3  # the months with readers
    # A change now does not rewrite a kept month: the past stays as it was counted.
    await sql(settings, "UPDATE subscribers SET agency = 'health' WHERE id = $1", police[1])
    again = [cells((await client.get("/console/")).text, m) for m in months[:12]]
    assert again[-2] == ["0", "1"] and again[-1] == ["4", "1"]


async def test_editions_list_pages_newest_first(client: Client, seeded: dict[str, Any], settings: Settings) -> None:
    await sql(settings, """
        INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status)
        SELECT 'old-' || g, '', 'Old edition ' || g, '<p>x</p>', 'a@example.org', '{}', 'done'
        FROM generate_series(1, 50) g""")
    first = await client.get("/console/editions")
    assert first.status_code == 200
    assert first.text.count('<th scope="row"><a href="/console/editions/') == 50
    assert "Old edition 50" in first.text and "Spring safeguarding update" not in first.text
    older = re.search(r'href="(/console/editions\?before=\d+)" rel="next"', first.text)
    assert older
    second = await client.get(older[1])
    assert "Spring safeguarding update" in second.text
    assert 'rel="next"' not in second.text
    assert_error_page(await client.get("/console/editions?before=abc"), 400, "could not be understood")


async def test_edition_page_shows_counts_breakdown_and_copies(client: Client, seeded: dict[str, Any]) -> None:
    edition_id = seeded["edition_id"]
    page = await client.get(f"/console/editions/{edition_id}")
    assert page.status_code == 200, page.text
    assert "<h1>Spring safeguarding update</h1>" in page.text
    assert "3 of 6 copies done" in page.text
    # By organisation: reader 1 (health, odd) failed; readers 2 and 3 sent.
    assert cells(page.text, "Health")[:3] == ["3", "1", "1"]
    assert cells(page.text, "Police")[:3] == ["3", "1", "0"]
    assert cells(page.text, "Practitioner")[:3] == ["6", "2", "1"]
    assert page.text.count('<tr>\n      <th scope="row"><a href="/console/subscribers/') == 6
    assert '<iframe class="preview" sandbox src="/console/editions/' in page.text
    # Viewers see no steering buttons.
    assert "Pause sending" not in page.text
    failed = await client.get(f"/console/editions/{edition_id}?status=failed")
    assert failed.text.count('<a href="/console/subscribers/') == 1
    assert seeded["emails"][0] in failed.text and "550 5.1.1 no such user" in failed.text
    progress = await client.get(f"/console/editions/{edition_id}/progress")
    assert progress.text.lstrip().startswith('<div id="edition-counts" data-refresh=')


async def test_edition_copies_page_through(client: Client, settings: Settings, admin_headers: dict[str, str]) -> None:
    await seed_console(settings.database_url or "", client, admin_headers, readers=75)
    await signed_in(client, settings, "viewer")
    edition_id = await sql(settings, "SELECT id FROM editions")
    first = await client.get(f"/console/editions/{edition_id}")
    assert first.text.count('<th scope="row"><a href="/console/subscribers/') == 50
    after = re.search(r'href="(/console/editions/\d+\?after=\d+)#copies" rel="next"', first.text)
    assert after
    second = await client.get(after[1])
    assert second.text.count('<th scope="row"><a href="/console/subscribers/') == 25
    assert 'rel="next"' not in second.text
    sent = await client.get(f"/console/editions/{edition_id}?status=sent")
    assert sent.text.count('<th scope="row"><a href="/console/subscribers/') == 36


async def test_edition_bad_ids_and_input_are_pages(client: Client, seeded: dict[str, Any]) -> None:
    assert_error_page(await client.get("/console/editions/999999"), 404, "There is no edition 999999.")
    assert_error_page(await client.get("/console/editions/999999/preview"), 404, "There is no edition")
    assert_error_page(await client.get("/console/editions/99999999999999999999"), 400, "could not be understood")
    edition_id = seeded["edition_id"]
    assert_error_page(await client.get(f"/console/editions/{edition_id}?status=lost"), 400, "could not be understood")
    assert_error_page(await client.get(f"/console/editions/{edition_id}?after=-1"), 400, "could not be understood")


async def test_preview_is_sandboxed(client: Client, seeded: dict[str, Any], admin_headers: dict[str, str]) -> None:
    edition_id = await post_edition(client, admin_headers, "With a script",
                                    html='<p style="color:red">Hi</p><script>alert(1)</script>')
    preview = await client.get(f"/console/editions/{edition_id}/preview")
    assert preview.status_code == 200
    assert preview.text == '<p style="color:red">Hi</p><script>alert(1)</script>'
    csp = preview.headers["content-security-policy"]
    assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'self'" in csp
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"


async def test_readers_search_by_address_or_name_prefix(client: Client, settings: Settings,
                                                        admin_headers: dict[str, str]) -> None:
    await seed_console(settings.database_url or "", client, admin_headers, readers=60)
    await signed_in(client, settings, "viewer")
    rows = '<th scope="row"><a href="/console/subscribers/'
    everyone = await client.get("/console/subscribers")
    assert everyone.text.count(rows) == 50
    more = re.search(r'href="(/console/subscribers\?after=\d+)" rel="next"', everyone.text)
    assert more
    assert (await client.get(more[1])).text.count(rows) == 10
    by_address = await client.get("/console/subscribers", params={"q": "READER1"})
    assert by_address.text.count(rows) == 11  # reader1, reader10 … reader19
    by_name = await client.get("/console/subscribers", params={"q": "reader 6"})
    assert by_name.text.count(rows) == 2  # Reader 6 and Reader 60: by name (no address has a space)
    wildcard = await client.get("/console/subscribers", params={"q": "%"})
    assert wildcard.text.count(rows) == 0 and "No reader’s address or name starts with" in wildcard.text
    assert_error_page(await client.get("/console/subscribers", params={"q": "x" * 201}), 400, "could not be understood")


async def test_reader_page_shows_lists_consents_and_bounces(client: Client, seeded: dict[str, Any]) -> None:
    reader = seeded["subscriber_ids"][0]
    page = await client.get(f"/console/subscribers/{reader}")
    assert page.status_code == 200, page.text
    assert f"<h1>{seeded['emails'][0]}</h1>" in page.text
    assert "Newsletter – confirmed" in page.text
    assert "550 5.1.1 no such user" in page.text and "Spring safeguarding update" in page.text
    assert "Copies failed" in page.text
    # A viewer may export but not change or erase.
    assert f"/console/subscribers/{reader}/export" in page.text
    assert "Save changes" not in page.text and "Erase this reader" not in page.text
    unsubscribed = await client.get(f"/console/subscribers/{seeded['subscriber_ids'][2]}")
    assert "<td>unsubscribe</td><td>news</td><td>link</td>" in unsubscribed.text
    assert_error_page(await client.get("/console/subscribers/424242"), 404, "There is no reader 424242")


async def test_lists_bounces_and_suppressions_pages(client: Client, seeded: dict[str, Any],
                                                    settings: Settings) -> None:
    lists = await client.get("/console/lists")
    assert lists.status_code == 200
    assert cells(lists.text, 'Newsletter')[1:] == ["yes", "6", "0", "0"]
    assert cells(lists.text, "Police") == ["police", "3"]
    assert "Add the list" not in lists.text  # viewers change nothing
    bounces = await client.get("/console/bounces")
    assert bounces.text.count("<tr><th scope=\"row\">") == 3
    unmatched = await client.get("/console/bounces?unmatched=true")
    assert unmatched.text.count("<tr><th scope=\"row\">") == 1
    assert "550 unknown stranger" in unmatched.text and "none found" in unmatched.text
    await sql(settings, "INSERT INTO suppressions (email_hash, email, reason) "
                        "SELECT email_hash('s' || g || '@example.org'), 's' || g || '@example.org', 'manual' "
                        "FROM generate_series(1, 55) g")
    first = await client.get("/console/suppressions")
    assert first.text.count("@example.org</th>") == 50
    older = re.search(r'href="(/console/suppressions\?after=[^"]+)" rel="next"', first.text)
    assert older
    assert (await client.get(older[1])).text.count("@example.org</th>") == 5
    assert_error_page(await client.get("/console/suppressions?after=nonsense"), 422, "cursor")


async def test_bounces_page_through_and_refuse_bad_input(client: Client, seeded: dict[str, Any],
                                                         settings: Settings) -> None:
    await sql(settings, "INSERT INTO bounce_events (email_hash, kind, diagnostic, source) "
                        "SELECT email_hash('x' || g || '@example.net'), 'soft', 'mailbox full ' || g, 'raw' "
                        "FROM generate_series(1, 55) g")
    first = await client.get("/console/bounces?unmatched=true")
    assert first.text.count("none found") == 50
    assert "mailbox full 55" in first.text and "550 unknown stranger" not in first.text
    older = re.search(r'href="(/console/bounces\?unmatched=true&amp;before=\d+)" rel="next"', first.text)
    assert older
    second = await client.get(older[1].replace("&amp;", "&"))
    assert second.text.count("none found") == 6  # five more, and the stranger's hard bounce
    assert 'rel="next"' not in second.text
    assert_error_page(await client.get("/console/bounces?before=0"), 400, "could not be understood")
    assert_error_page(await client.get("/console/bounces?unmatched=perhaps"), 400, "could not be understood")
