"""Run by GNU Mailman's own interpreter (var/mailman-venv), never by Letterbox's: make the list
``news@example.org`` with personalised copies, subscribe N members and queue one post to it.

    var/mailman-venv/bin/python bench/mailman_setup.py CONFIG MEMBERS MESSAGE_FILE
"""

from __future__ import annotations

import datetime
import importlib
import sys
from typing import Any


def main() -> None:
    """Create the list and its members, inject the post into Mailman's ``in`` queue."""
    config_file, members, message_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # Imported by name: Mailman lives only in its own virtualenv, not where Letterbox is type-checked.
    def load(module: str, name: str) -> Any:
        return getattr(importlib.import_module(module), name)

    load("mailman.core.initialize", "initialize")(config_file)
    inject_text = load("mailman.app.inject", "inject_text")
    create_list = load("mailman.app.lifecycle", "create_list")
    config = load("mailman.config", "config")
    accept = load("mailman.interfaces.action", "Action").accept
    individual = load("mailman.interfaces.mailinglist", "Personalization").individual
    member = load("mailman.interfaces.member", "MemberRole").member
    utility = load("zope.component", "getUtility")
    users = utility(load("mailman.interfaces.usermanager", "IUserManager"))
    utility(load("mailman.interfaces.domain", "IDomainManager")).add("example.org")

    mlist = create_list("news@example.org")
    mlist.personalize = individual  # one copy per member, as Letterbox sends
    mlist.max_message_size = 0
    mlist.default_member_action = accept
    mlist.default_nonmember_action = accept
    mlist.send_welcome_message = False
    now = datetime.datetime.now()
    for n in range(1, members + 1):
        address = users.create_address(f"reader{n}@example.org", f"Reader {n}")
        address.verified_on = now
        mlist.subscribe(address, member, send_welcome_message=False)
    config.db.commit()
    with open(message_file, "rb") as handle:
        inject_text(mlist, handle.read())
    config.db.commit()


if __name__ == "__main__":
    main()
