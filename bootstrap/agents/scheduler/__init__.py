"""kube-scheduler (``bootstrap-scheduler``, ``python -m bootstrap.agents.scheduler``).

framework.py runs a profile's plugins (plugins/) over cache.py's NodeInfos;
queue.py orders pending pods; preemption.py picks victims; scheduler.py does the
I/O (bind, status, events, evictions); config.py reads KubeSchedulerConfiguration;
app.py is the process. See docs/scheduler.md.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from .app import main as app_main

    return app_main(argv)
