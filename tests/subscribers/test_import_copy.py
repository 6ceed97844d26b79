"""A batch of new people as COPY bodies: PostgreSQL's text format, exactly, or nothing."""

from __future__ import annotations

import pytest

from service.subscribers.import_copy import CONSENT_COLUMNS, PEOPLE_COLUMNS, SUBSCRIPTION_COLUMNS, CopyRows


def test_each_person_is_a_row_with_their_lists_and_consent_record_and_a_suppressed_one_is_left_out() -> None:
    rows = CopyRows(
        lines=[2, 3, 4], emails=["ann@example.org", "gone@example.org", "cat@example.org"],
        names=["Ann", "Gone", None], agencies=["police", None, None], roles=[None, None, "practitioner"],
        attributes=['{"team":"x"}', None, None],
        lists=["{newsletter,training}", "{newsletter}", "{training}"], list_ids=["{1,2}", "{1}", "{2}"])
    bodies = rows.bodies([11, None, 13])
    assert bodies.people.decode().splitlines() == [
        "11\tann@example.org\tAnn\tpolice\t\\N\t{\"team\":\"x\"}\tactive\tnow",
        "13\tcat@example.org\t\t\\N\tpractitioner\t{}\tactive\tnow",
    ]
    assert bodies.subscriptions.decode().splitlines() == ["1\t11\tconfirmed", "2\t11\tconfirmed", "2\t13\tconfirmed"]
    assert bodies.consents.decode().splitlines() == ["11\timport\t{newsletter,training}\timport",
                                                     "13\timport\t{training}\timport"]
    assert (bodies.ids, bodies.lines) == ([11, 13], [2, 4])
    assert [len(line.split("\t")) for line in bodies.people.decode().splitlines()] == [len(PEOPLE_COLUMNS)] * 2
    assert len(bodies.subscriptions.decode().split("\n", 1)[0].split("\t")) == len(SUBSCRIPTION_COLUMNS)
    assert len(bodies.consents.decode().split("\n", 1)[0].split("\t")) == len(CONSENT_COLUMNS)


def test_backslashes_are_written_twice_so_that_copy_reads_them_as_written() -> None:
    # COPY's text format reads \t, \n, \N, \\ ... as escapes: a name or an attribute holding a
    # backslash (JSON writes one before every quote it escapes) would otherwise change.
    bodies = CopyRows(lines=[2], emails=["ann@example.org"], names=["Ann \\N Smith\\"],
                      agencies=[None], roles=[None], attributes=['{"q":"say \\"hi\\""}'],
                      lists=["{newsletter}"], list_ids=["{1}"]).bodies([1])
    assert bodies.people.decode().split("\t")[2] == "Ann \\\\N Smith\\\\"
    assert bodies.people.decode().split("\t")[5] == '{"q":"say \\\\"hi\\\\""}'


@pytest.mark.parametrize("name", ["Ann\tSmith", "Ann\nSmith"])
def test_a_value_with_a_tab_or_a_line_break_is_never_sent(name: str) -> None:
    # Checked values cannot hold one; one that did would shift the columns of its row or the next.
    with pytest.raises(ValueError, match="tab or a line break"):
        CopyRows(lines=[2, 3], emails=["ann@example.org", "bob@example.org"], names=[name, "Bob"],
                 agencies=[None, None], roles=[None, None], attributes=[None, None],
                 lists=["{newsletter}", "{newsletter}"], list_ids=["{1}", "{1}"]).bodies([1, 2])


def test_ids_for_another_number_of_rows_are_refused() -> None:
    rows = CopyRows(lines=[2], emails=["ann@example.org"], names=[None], agencies=[None], roles=[None],
                    attributes=[None], lists=["{newsletter}"], list_ids=["{1}"])
    with pytest.raises(ValueError, match="another number of rows"):
        rows.bodies([1, 2])
