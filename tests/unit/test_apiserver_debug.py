"""/debug/pprof/ helpers and the audit fields of impersonated requests, without a server."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from bootstrap.agents.apiserver import app
from bootstrap.agents.apiserver.audit import AuditLogger
from bootstrap.agents.apiserver.auth.authn import UserInfo
from bootstrap.agents.apiserver.handlers import debug
from bootstrap.agents.apiserver.requestinfo import parse
from bootstrap.api import errors


@pytest.mark.parametrize("raw,expected", [(None, 30), ("1", 1), ("60", 60), ("0", 30),
                                          ("-5", 30), ("abc", 30)])
def test_profile_seconds_default_like_go(raw, expected):
    assert debug.parse_seconds(raw) == expected


def test_profile_seconds_over_the_bound_is_bad_request():
    with pytest.raises(errors.APIError) as exc:
        debug.parse_seconds("61")
    assert exc.value.code == 400


def test_stacks_list_every_task_and_thread():
    async def parked():
        await asyncio.sleep(30)

    async def main():
        task = asyncio.create_task(parked(), name="parked-task")
        await asyncio.sleep(0)
        try:
            return debug.stacks()
        finally:
            task.cancel()

    out = asyncio.run(main())
    assert "parked-task" in out and "in test_stacks_list_every_task_and_thread.<locals>.parked" \
        in out
    assert "Thread MainThread" in out


def test_heap_starts_tracing_once():
    was = tracemalloc.is_tracing()
    try:
        tracemalloc.stop()
        first = debug.heap()
        assert "has been started by this request" in first and tracemalloc.is_tracing()
        second = debug.heap(collect=True)
        assert "has been started" not in second and "top 50 allocation sites" in second
    finally:
        if not was:
            tracemalloc.stop()


def test_cpu_profile_of_the_loop_thread():
    async def main():
        async def busy():
            while True:
                sum(range(1000))
                await asyncio.sleep(0)

        task = asyncio.create_task(busy())
        try:
            return await debug.cpu_profile("1")
        finally:
            task.cancel()

    resp = asyncio.run(main())
    assert resp.status == 200
    assert "sorted by cumulative time" in resp.text and "(busy)" in resp.text


def test_audit_of_an_impersonated_request(tmp_path):
    path = tmp_path / "audit.log"
    logger = AuditLogger(path)
    server = SimpleNamespace(audit=logger)
    # aiohttp's Request is also a mapping of per-request state (audit annotations).
    request = SimpleNamespace(rel_url="/api/v1/namespaces", remote="127.0.0.1",
                              headers={"User-Agent": "kubectl"}, get={}.get)
    info = parse("GET", "/api/v1/namespaces", {})
    admin = UserInfo("kubernetes-admin", groups=["system:masters", "system:authenticated"])
    bob = UserInfo("bob", groups=["system:authenticated"])
    try:
        app._audit(server, request, info, bob, 200, datetime.now(UTC), admin)
        app._audit(server, request, info, admin, 200, datetime.now(UTC))
    finally:
        logger.close()
    impersonated, plain = (json.loads(line) for line in path.read_text().splitlines())
    assert impersonated["user"]["username"] == "kubernetes-admin"
    assert impersonated["impersonatedUser"] == {"username": "bob",
                                                "groups": ["system:authenticated"]}
    assert plain["user"]["username"] == "kubernetes-admin" and "impersonatedUser" not in plain


def test_second_cpu_profile_at_once_is_refused_like_go():
    async def main():
        first = asyncio.create_task(debug.cpu_profile("1"))
        await asyncio.sleep(0)
        second = await debug.cpu_profile("1")
        return await first, second

    first, second = asyncio.run(main())
    assert first.status == 200
    assert second.status == 500 and "cpu profiling already in use" in second.text
