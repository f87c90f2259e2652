"""botocore's User-Agent built once per feature set (asyncmq_cloud._aws_user_agent): same header, fewer builds."""

from __future__ import annotations

from typing import Any

from aiobotocore.session import get_session
from botocore.context import start_as_current_context
from botocore.useragent import register_feature_id

from asyncmq_cloud._aws_user_agent import cache_user_agent

CLIENT = {
    "region_name": "us-east-1",
    "endpoint_url": "http://127.0.0.1:9",  # never called: the header is built, not sent
    "aws_access_key_id": "unit",
    "aws_secret_access_key": "unit",
}


def user_agents(client: Any) -> list[str]:
    """The client's User-Agent with no context, with a feature, with another, and with none again."""
    built = [client._user_agent_creator.to_string()]
    for feature in ("WAITER", "PAGINATOR"):
        with start_as_current_context():
            register_feature_id(feature)
            built.append(client._user_agent_creator.to_string())
    with start_as_current_context():
        built.append(client._user_agent_creator.to_string())
    return built


async def test_the_cached_header_is_botocores_and_is_built_once_per_feature_set() -> None:
    session = get_session()
    async with session.create_client("sqs", **CLIENT) as plain, session.create_client("sqs", **CLIENT) as cached:
        expected = user_agents(plain)
        assert len(set(expected)) == 3, expected  # the features change the header: the cache must key on them
        creator = cached._user_agent_creator
        original, builds = creator.to_string, []

        def counted() -> str:
            builds.append(1)
            return str(original())

        creator.to_string = counted
        assert cache_user_agent(cached) is True
        assert user_agents(cached) == expected
        assert user_agents(cached) == expected
        assert len(builds) == 3  # one per distinct feature set, however often asked


async def test_a_client_without_botocores_builder_is_left_alone() -> None:
    class Bare:
        pass

    assert cache_user_agent(Bare()) is False
