import pytest

from client.synthetic import make_dataset
from tests.e2e.stack import Stack, free_port


def make_stack(tmp_path_factory, name: str, extra_env: dict[str, str], stack_class: type[Stack] = Stack) -> Stack:
    home = tmp_path_factory.mktemp(name)
    env = {
        "STAGERUN_HOME": str(home / "var"),
        "STAGERUN_API_PORT": str(free_port()),
        "STAGERUN_HEARTBEAT_INTERVAL_S": "1",
        **extra_env,
    }
    stack = stack_class(env, home / "logs")
    stack.home = home / "var"
    make_dataset(home / "var" / "datasets" / "tiny", train=8, val=4, size=64, seed=3)
    return stack


@pytest.fixture(scope="module")
def stack_factory(tmp_path_factory):
    stacks = []

    def factory(name: str, extra_env: dict[str, str] | None = None) -> Stack:
        stack = make_stack(tmp_path_factory, name, extra_env or {})
        stacks.append(stack)
        stack.up()
        return stack

    yield factory
    for stack in stacks:
        stack.stop()
