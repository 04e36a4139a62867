from tests.api.conftest import client  # noqa: F401  (the API's test client, for reading what stages recorded)
