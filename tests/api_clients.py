"""API test clients for every test folder (loaded by tests/conftest.py as a plugin). Every request carries a bearer token: ``client`` is an admin (owner "tester");
``client_for(owner, admin=False)`` gives more clients with tokens of their own, on the same app."""

import pytest
from fastapi.testclient import TestClient


def new_token(owner: str, admin: bool = False, name: str | None = None) -> str:
    from shared.auth import create_token
    from shared.db import session_scope

    with session_scope() as session:
        return create_token(session, name or owner, owner, admin)[1]


@pytest.fixture
def app(embedded):
    from api.main import create_app

    return create_app()


@pytest.fixture
def client_for(app):
    opened = []

    def make(owner: str, admin: bool = False) -> TestClient:
        client = TestClient(app, headers={"Authorization": f"Bearer {new_token(owner, admin)}"})
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_for):
    return client_for("tester", admin=True)


@pytest.fixture
def anonymous(app):
    with TestClient(app) as test_client:
        yield test_client
