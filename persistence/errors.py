"""Typed failures of the store port, shared by every adapter.

Adapters translate their driver's exceptions into these (raised ``from`` the original), so
callers never import sqlite3 or pymongo to handle a store failure:

* :class:`StoreUnavailable`: the backend cannot be reached or cannot acknowledge a write
  right now (network, failover, locked database, write concern not satisfied). Retry later;
  the order writer backs off and keeps its stream entries pending.
* :class:`DuplicateEmail`: a user with that email (case-insensitive) already exists.
* :class:`StoreError`: anything else the store refused; retrying the same call will not help.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every failure a store adapter raises."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached (or cannot acknowledge) right now; safe to retry."""


class DuplicateEmail(StoreError):
    """A user with this email (compared case-insensitively) already exists."""

    def __init__(self, email: str) -> None:
        super().__init__(f"a user with email {email!r} already exists")
        self.email = email


class DuplicateId(StoreError):
    """A document with this id already exists (creating where a replace was meant)."""

    def __init__(self, kind: str, id_: str) -> None:
        super().__init__(f"{kind} {id_!r} already exists")
        self.kind = kind
        self.id = id_
