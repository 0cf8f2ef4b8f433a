"""The legacy costs each tenant still holds, read from the database (``LegacyCosts``)."""

from __future__ import annotations

import bcrypt
from sqlalchemy import update

from idp.accounts.models import Account
from idp.accounts.services import LegacyCosts, create_account
from tests.unit.test_hashing import _pbkdf2

PASSWORD = "Ancien-Systeme-1!"


def _imported(app, db, tenant: str, number: str, legacy_hash: str) -> Account:
    services = app.extensions["idp"]
    account = create_account(db, services.hasher, services.tenants[tenant], given_name="Jeanne",
                             family_name="Martin", password=None, member_number=number,
                             email=f"{number}@example.org", password_hash=legacy_hash)
    db.commit()
    return account


def test_each_tenant_has_the_costs_of_its_own_imported_hashes_wrapped_or_not(app, db, make):
    tenants = app.extensions["idp"].tenants
    make.account("malakoff")  # argon2id: no legacy cost
    _imported(app, db, "malakoff", "30000001", _pbkdf2(PASSWORD, iterations=1200))
    _imported(app, db, "malakoff", "30000002", _pbkdf2(PASSWORD, salt="other", iterations=1200))
    _imported(app, db, "miel", "30000003", bcrypt.hashpw(PASSWORD.encode(),
                                                        bcrypt.gensalt(rounds=5)).decode())
    # One left as an older import stored it, unwrapped.
    left = _imported(app, db, "miel", "30000004", _pbkdf2(PASSWORD, iterations=900))
    db.execute(update(Account).where(Account.id == left.id)
               .values(password_hash=_pbkdf2(PASSWORD, iterations=900)))
    db.commit()

    costs = LegacyCosts()
    assert costs.of(db, tenants["malakoff"]) == {"pbkdf2_sha256$1200"}
    assert costs.of(db, tenants["miel"]) == {"bcrypt$05", "pbkdf2_sha256$900"}


def test_the_costs_are_read_again_once_their_time_is_over(app, db, make):
    tenant = app.extensions["idp"].tenants["malakoff"]
    now = [0.0]
    costs = LegacyCosts(ttl=60, clock=lambda: now[0])
    assert costs.of(db, tenant) == frozenset()
    _imported(app, db, "malakoff", "30000001", _pbkdf2(PASSWORD, iterations=1200))
    now[0] = 59.0
    assert costs.of(db, tenant) == frozenset()
    now[0] = 60.0
    assert costs.of(db, tenant) == {"pbkdf2_sha256$1200"}
