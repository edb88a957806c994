"""/debug/pprof/ (--profiling): the Python counterparts of kube-apiserver's Go pprof pages.

Same paths and the same gate as upstream (the flag, then ordinary non-resource
authorization, which runs before dispatch), but Python data in text form, not
pprof's protobuf, so ``go tool pprof`` cannot read them:

* ``profile?seconds=N``: cProfile of the event-loop thread for N seconds (default 30,
  at most 60), as pstats text sorted by cumulative time. Every request and watch runs
  on that thread, so this is where CPU time goes; worker threads (OpenAPI build) are
  not included.
* ``goroutine``: the stack of every asyncio task and every thread.
* ``heap``: tracemalloc's top allocation sites. Tracing costs memory and time, so it
  starts on the first request only and tracks allocations from then on.
* ``cmdline``: the process arguments, NUL-separated like Go's.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import pstats
import sys
import threading
import tracemalloc

from aiohttp import web

from bootstrap.api import errors

PROFILES = {
    "cmdline": "The command line invocation of the current program",
    "goroutine": "Stack traces of all current asyncio tasks and threads",
    "heap": "Top allocation sites from tracemalloc (started on the first request)",
    "profile": "cProfile of the event-loop thread; ?seconds=N (default 30, at most 60)",
}
DEFAULT_SECONDS = 30
MAX_SECONDS = 60
HEAP_TOP = 50
HEAP_FRAMES = 10

# One cProfile per thread at a time: a second profiler would replace the first's hook.
_cpu_busy = asyncio.Lock()


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain",
                        charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})


def _not_found() -> errors.APIError:
    return errors.APIError(404, "NotFound", "the server could not find the requested resource")


async def handle(server, request: web.Request, parts: list[str]) -> web.StreamResponse:
    """``parts`` starts with ["debug", "pprof"]."""
    if not server.cfg.profiling:
        raise _not_found()
    if request.method not in ("GET", "HEAD"):
        raise errors.method_not_supported(request.path, request.method)
    name = parts[2] if len(parts) == 3 else "" if len(parts) == 2 else None
    if name == "":
        return _text(index())
    if name == "profile":
        return await cpu_profile(request.query.get("seconds"))
    if name == "goroutine":
        return _text(stacks())
    if name == "heap":
        return _text(await asyncio.to_thread(heap, request.query.get("gc") == "1"))
    if name == "cmdline":
        return _text("\x00".join(sys.argv))
    raise _not_found()


def index() -> str:
    lines = ["/debug/pprof/ (Python profiles; text, not pprof's protobuf format)", ""]
    lines += [f"{name}: {desc}" for name, desc in sorted(PROFILES.items())]
    return "\n".join(lines) + "\n"


def parse_seconds(raw: str | None) -> int:
    # As Go's pprof.Profile: a missing, malformed or non-positive value means the default.
    try:
        seconds = int(raw) if raw is not None else DEFAULT_SECONDS
    except ValueError:
        seconds = DEFAULT_SECONDS
    if seconds <= 0:
        seconds = DEFAULT_SECONDS
    if seconds > MAX_SECONDS:
        raise errors.bad_request(f"profile duration {seconds}s exceeds the maximum of "
                                 f"{MAX_SECONDS}s")
    return seconds


async def cpu_profile(raw_seconds: str | None) -> web.Response:
    seconds = parse_seconds(raw_seconds)
    if _cpu_busy.locked():
        # Go answers a concurrent CPU profile the same way.
        return _text("Could not enable CPU profiling: cpu profiling already in use\n", 500)
    async with _cpu_busy:
        prof = cProfile.Profile()
        # Enabled from this coroutine, the hook sits on the event-loop thread and so sees
        # every task's work until disabled, including after a client disconnect.
        prof.enable()
        try:
            await asyncio.sleep(seconds)
        finally:
            prof.disable()
    return _text(await asyncio.to_thread(format_profile, prof, seconds))


def format_profile(prof: cProfile.Profile, seconds: int) -> str:
    buf = io.StringIO()
    buf.write(f"cProfile of the event-loop thread for {seconds}s, sorted by cumulative time\n")
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats()
    return buf.getvalue()


def stacks() -> str:
    buf = io.StringIO()
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    buf.write(f"asyncio tasks: {len(tasks)}\n\n")
    for task in tasks:
        buf.write(f"{task!r}, most recent call last:\n")
        # get_stack holds one frame per awaiting coroutine, outermost first.
        buf.writelines(_frame_line(f) for f in task.get_stack())
        buf.write("\n")
    names = {t.ident: t.name for t in threading.enumerate()}
    frames = sys._current_frames()
    buf.write(f"threads: {len(frames)}\n\n")
    for ident, frame in sorted(frames.items()):
        buf.write(f"Thread {names.get(ident, '?')} (ident {ident}), most recent call last:\n")
        chain = []
        while frame is not None:
            chain.append(frame)
            frame = frame.f_back
        buf.writelines(_frame_line(f) for f in reversed(chain))
        buf.write("\n")
    return buf.getvalue()


def _frame_line(frame) -> str:
    # Formatted by hand: traceback's formatter fails on frames without a line number
    # (a coroutine suspended in C code), which the loop's tasks can have.
    code = frame.f_code
    return f"  {code.co_filename}:{frame.f_lineno or '?'} in {code.co_qualname}\n"


def heap(collect: bool = False) -> str:
    buf = io.StringIO()
    if not tracemalloc.is_tracing():
        tracemalloc.start(HEAP_FRAMES)
        buf.write("tracemalloc was not running and has been started by this request: only "
                  "allocations from now on are tracked; ask again later for a useful "
                  "picture.\n")
    if collect:
        gc.collect()
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    buf.write(f"traced memory: current {current} bytes, peak {peak} bytes\n")
    buf.write(f"top {HEAP_TOP} allocation sites by size:\n")
    for stat in snapshot.statistics("lineno")[:HEAP_TOP]:
        buf.write(f"{stat}\n")
    return buf.getvalue()
