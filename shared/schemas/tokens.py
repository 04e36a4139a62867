"""API tokens as the admin routes (``/v1/tokens``) take and show them. A token's text appears once, in the
answer to its creation; no response ever carries its hash."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.models import ApiToken
from shared.schemas.moments import UtcDateTime

TokenLabel = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TokenLabel = Field(description="What the token is for (ci, alice-laptop); 1-100 characters.")
    owner: TokenLabel = Field(
        description="Whose jobs and datasets it sees; tokens with the same owner see the same ones. 1-100 characters."
    )
    admin: bool = Field(False, description="An admin token sees every owner's jobs and may manage tokens.")


class TokenPublic(BaseModel):
    id: int
    name: str
    owner: str
    admin: bool
    created_at: UtcDateTime
    last_used_at: UtcDateTime | None = Field(
        description="When a request last used it (written at most once per auth cache TTL per API process)."
    )
    revoked_at: UtcDateTime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenPublic:
        return cls(
            id=token.id,
            name=token.name,
            owner=token.owner,
            admin=token.is_admin,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreated(BaseModel):
    id: int
    name: str
    owner: str
    admin: bool
    created_at: UtcDateTime
    token: str = Field(description="The bearer token. Shown only this once: only its SHA-256 is stored.")


class TokensPublic(BaseModel):
    items: list[TokenPublic] = Field(description="Every token, revoked ones included, oldest first.")
