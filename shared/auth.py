"""API tokens and the principal a request acts as.

A token is shown once, at creation; only its SHA-256 is stored. Every token belongs to an owner
(several tokens may share one); a principal sees the jobs and datasets of its owner, an admin sees
all. ``Principal.scope`` is the one place that filters rows by owner: the job and dataset lookups
(shared/jobs.py, shared/datasets/registry.py) take a principal and apply it."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound
from shared.models import ApiToken, as_utc, utcnow

TOKEN_PREFIX = "sr_"
LOCAL_OWNER = "local"


@dataclass(frozen=True)
class Principal:
    owner: str
    is_admin: bool = False
    token_id: int | None = None

    def can_see(self, owner: str | None) -> bool:
        return self.is_admin or owner == self.owner

    def scope(self, query: Select, owner_column) -> Select:
        """``query`` limited to rows this principal may see."""
        return query if self.is_admin else query.where(owner_column == self.owner)

    @property
    def cache_scope(self) -> str:
        """Two principals with the same scope see exactly the same rows."""
        return "*admin*" if self.is_admin else f"owner:{self.owner}"


SYSTEM = Principal(owner="system", is_admin=True)
"""Trusted in-process callers: the worker running a stage of a job that was checked when submitted."""
LOCAL_ADMIN = Principal(owner=LOCAL_OWNER, is_admin=True)
"""Whoever runs ``stagerun run`` on this machine: same owner as the local token."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token_text() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(session: Session, name: str, owner: str | None = None, is_admin: bool = False) -> tuple[ApiToken, str]:
    """Store a new token (hashed) and return it with its text, which is never stored."""
    name, owner = name.strip(), (owner or name).strip()
    if not name or not owner or len(name) > 100 or len(owner) > 100:
        raise ValueError("token name and owner must be 1-100 characters")
    text = new_token_text()
    token = ApiToken(name=name, owner=owner, token_hash=hash_token(text), is_admin=is_admin, created_at=utcnow())
    session.add(token)
    session.commit()
    return token, text


def find_token(session: Session, text: str) -> ApiToken | None:
    """The live (not revoked) token with this text, or None."""
    if not text.startswith(TOKEN_PREFIX) or len(text) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(text)))
    if token is None or token.revoked_at is not None:
        return None
    return token


def principal_of(token: ApiToken) -> Principal:
    return Principal(owner=token.owner, is_admin=token.is_admin, token_id=token.id)


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def token_revoked_at(session: Session, token_id: int) -> datetime | None:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token with id {token_id}", field="token_id")
    return token.revoked_at


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token with id {token_id}", field="token_id")
    token.revoked_at = token.revoked_at or utcnow()
    session.commit()
    return token


def revoke_live_token(session: Session, token_id: int) -> ApiToken:
    """Revoke a token that is live now: ``NotFound`` for an unknown id, ``Conflict`` (saying when) for one
    already revoked. A compare-and-set, so of two concurrent revokes exactly one succeeds. Commits."""
    now = utcnow()
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    token = session.get(ApiToken, token_id, populate_existing=True)
    if token is None:
        raise NotFound(f"no token with id {token_id}", field="token_id")
    if result.rowcount != 1:
        when = as_utc(token.revoked_at).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        raise Conflict(f"token {token_id} was already revoked at {when}", field="token_id")
    return token


def ensure_local_token(session: Session, token_file: Path) -> tuple[str, bool]:
    """The local admin token of a stagerun home: reused while the token in ``token_file`` is live,
    else created and written there (mode 0600). Returns (token text, created)."""
    if token_file.is_file():
        text = token_file.read_text(encoding="utf-8").strip()
        if find_token(session, text) is not None:
            return text, False
    _token, text = create_token(session, name="local", owner=LOCAL_OWNER, is_admin=True)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    partial = token_file.with_name(token_file.name + ".part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.chmod(partial, 0o600)
    partial.replace(token_file)
    return text, True


def read_token_file(token_file: Path) -> str | None:
    try:
        return token_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
