"""The test bed's own logic: which shared service instance a pytest-xdist worker takes."""

from __future__ import annotations

from tests.plugins.services import pick_for_worker


def test_each_worker_takes_its_own_instance_round_robin() -> None:
    urls = "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3"
    assert [pick_for_worker(urls, f"gw{n}") for n in range(4)] == [
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        "http://127.0.0.1:3",
        "http://127.0.0.1:1",
    ]


def test_one_address_or_no_xdist_takes_the_first() -> None:
    assert pick_for_worker("redis://127.0.0.1:9/0", "gw5") == "redis://127.0.0.1:9/0"
    assert pick_for_worker("a, b", "") == "a"
    assert pick_for_worker("a,b", "master") == "a"
