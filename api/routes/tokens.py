"""API tokens over HTTP, for admins: create one (its text shown once), list them (never a secret), revoke one.
The same functions as ``stagerun token ...`` (shared/auth.py); any other token is answered 403."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from api.deps import CurrentPrincipal, SessionDep, current_principal, principal_cache
from api.responses import CONFLICT, V1_ERRORS, ErrorResponse
from shared import auth
from shared.auth import Principal
from shared.errors import Forbidden, InvalidSpec
from shared.schemas.tokens import TokenCreate, TokenCreated, TokenPublic, TokensPublic

FORBIDDEN = {403: {"model": ErrorResponse, "description": "The token is valid but not an admin token."}}


def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("managing tokens needs an admin token", field="Authorization")
    return principal


router = APIRouter(
    prefix="/tokens",
    tags=["tokens"],
    dependencies=[Depends(current_principal), Depends(require_admin)],
    responses=V1_ERRORS | FORBIDDEN,
)
TokenId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Token id, as the list shows it.")]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, session: SessionDep) -> TokenCreated:
    """Create a token for an owner. Its text is in this answer only: only its SHA-256 is stored."""
    try:
        token, text = auth.create_token(session, body.name, body.owner, body.admin)
    except ValueError as exc:  # the schema already checks what create_token checks; kept as a guard
        raise InvalidSpec(str(exc), field="name") from None
    return TokenCreated(
        id=token.id, name=token.name, owner=token.owner, admin=token.is_admin, created_at=token.created_at, token=text
    )


@router.get("", response_model=TokensPublic)
def list_tokens(session: SessionDep) -> TokensPublic:
    """Every token, revoked ones included: who it belongs to and when it was made, last used and revoked.
    Neither a token's text nor its hash is ever shown."""
    return TokensPublic(items=[TokenPublic.of(token) for token in auth.list_tokens(session)])


@router.delete(
    "/{token_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=CONFLICT
)
def revoke_token(token_id: TokenId, session: SessionDep) -> Response:
    """Revoke a token: it is refused from now on (by this API process at once; by other API processes
    within their auth cache TTL). Revoking the token this request carries is allowed. A token already
    revoked is a 409 saying when."""
    auth.revoke_live_token(session, token_id)
    # The principal cache is keyed by token text, which is not stored, so it is emptied: revokes are rare and
    # every other token costs one database read to be remembered again.
    principal_cache.cache_clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
