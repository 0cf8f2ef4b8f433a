"""A password hash names its own cost: one beyond the bounds is refused at import and fails
at sign-in without being computed, so it cannot hold a worker (SPEC §4, §11)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from idp.accounts.models import Account
from tests.cli.test_accounts import MALAKOFF, accounts, stored
from tests.flows import Flow

# Salt and digest of the right shape; nothing here is ever computed.
SALT, DIGEST = "c29tZXNhbHRzb21lc2FsdA", "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

COSTLY = {
    "argon2 passes": f"$argon2id$v=19$m=65536,t=300,p=4${SALT}${DIGEST}",
    "argon2 memory": f"$argon2id$v=19$m=4194304,t=1,p=4${SALT}${DIGEST}",
    "argon2 lanes": f"$argon2id$v=19$m=65536,t=1,p=255${SALT}${DIGEST}",
    "pbkdf2 iterations": f"pbkdf2_sha256$10000000$s4lt${DIGEST}=",
    "bcrypt cost": "$2b$31$" + "a" * 53,
}
# Beyond the bounds but finite, for the sign-in: computing any of them takes seconds of CPU,
# all of it in the thread that checks the password (argon2 with one lane spawns no thread).
SLOW = {
    "argon2": f"$argon2id$v=19$m=65536,t=40,p=1${SALT}${DIGEST}",
    "pbkdf2": f"pbkdf2_sha256$8000000$s4lt${DIGEST}=",
    "bcrypt": "$2b$17$" + "a" * 53,
}


@pytest.mark.parametrize("costly", COSTLY.values(), ids=COSTLY.keys())
def test_an_import_of_a_hash_beyond_the_bounds_is_refused_and_creates_nothing(runner, db, costly):
    result = accounts(runner, "create", *MALAKOFF[:6], "--member-number", "30000004", "--legacy",
                      "--hash-on-stdin", input=f"{costly}\n")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    [message] = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert "accepted" in message
    assert stored(db) == []


@pytest.mark.parametrize("costly", SLOW.values(), ids=SLOW.keys())
def test_a_stored_hash_beyond_the_bounds_fails_at_once(client, rp, member, db, costly):
    # As if it had been written before the bounds existed, or straight into the database.
    db.execute(update(Account).where(Account.id == member.id).values(password_hash=costly))
    db.commit()
    flow = Flow(client, "malakoff", rp, member)

    # The CPU the sign-in took in this thread, where the test client runs the app: a busy
    # machine does not stretch it as it stretches the wall clock, and the process's other
    # threads (an earlier test's servers, say) do not add to it.
    started = time.thread_time()
    answer = flow.give_password("Any-Password-1!", prompt=None)
    spent = time.thread_time() - started

    assert answer.status_code == 401  # a wrong password, as for any other
    assert spent < 0.5  # a few hundredths; computing the cheapest of them, over a second
    assert db.scalar(select(Account.password_hash).where(Account.id == member.id)) == costly
