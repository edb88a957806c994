"""--event-loop: which loop the API server's processes run on (parsing and selection only;
bench/bench_apiserver.py measures the loops)."""

from __future__ import annotations

import asyncio

import pytest

import bootstrap.agents.apiserver as apiserver
from bootstrap.agents.apiserver import flags

ETCD = "--etcd-servers=https://127.0.0.1:2379"


@pytest.fixture
def no_uvloop(monkeypatch):
    monkeypatch.setattr(flags, "_uvloop_available", lambda: False)


@pytest.fixture
def with_uvloop(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.setattr(flags, "_uvloop_available", lambda: True)


def test_default_is_the_documented_one(with_uvloop):
    assert flags.DEFAULT_EVENT_LOOP in flags.EVENT_LOOPS
    expect = "asyncio" if flags.DEFAULT_EVENT_LOOP == "asyncio" else "uvloop"
    assert flags.parse([ETCD]).event_loop == expect


def test_default_without_uvloop_is_asyncio(no_uvloop):
    assert flags.parse([ETCD]).event_loop == "asyncio"


@pytest.mark.parametrize("value, expect", [("asyncio", "asyncio"), ("uvloop", "uvloop"),
                                           ("auto", "uvloop")])
def test_explicit_choice_with_uvloop_installed(with_uvloop, value, expect):
    assert flags.parse([ETCD, f"--event-loop={value}"]).event_loop == expect


def test_auto_falls_back_to_asyncio(no_uvloop):
    assert flags.parse([ETCD, "--event-loop=auto"]).event_loop == "asyncio"
    assert flags.parse([ETCD, "--event-loop=asyncio"]).event_loop == "asyncio"


def test_uvloop_missing_is_a_flag_error(no_uvloop):
    with pytest.raises(flags.FlagError, match="uvloop package is not installed"):
        flags.parse([ETCD, "--event-loop=uvloop"])


def test_unknown_loop_is_a_flag_error():
    with pytest.raises(flags.FlagError, match="invalid choice"):
        flags.parse([ETCD, "--event-loop=trio"])


def test_loop_factory():
    assert apiserver.loop_factory("asyncio") is None
    uvloop = pytest.importorskip("uvloop")
    assert apiserver.loop_factory("uvloop") is uvloop.new_event_loop


@pytest.mark.parametrize("value", ["asyncio", "uvloop"])
def test_main_serves_on_the_chosen_loop(monkeypatch, value):
    """main() runs _serve on the loop the flag chose (each forked worker runs main's
    Runner after the fork, so it makes its own loop the same way)."""
    if value == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        expect = uvloop.Loop
    else:
        expect = asyncio.BaseEventLoop
    seen = []

    async def serve(cfg, primary=True, children=None):
        seen.append((cfg.event_loop, asyncio.get_running_loop()))

    monkeypatch.setattr(apiserver, "_serve", serve)
    apiserver.main([ETCD, f"--event-loop={value}"])
    (chosen, loop), = seen
    assert chosen == value
    assert isinstance(loop, expect)
    if value == "asyncio":
        assert not type(loop).__module__.startswith("uvloop")
