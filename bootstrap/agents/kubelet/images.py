"""Image pulls: imagePullPolicy, back-off and the events upstream's image manager emits."""

from __future__ import annotations

import time
from collections.abc import Callable

from bootstrap.agents.kubelet import status as S
from bootstrap.agents.kubelet.backoff import Backoff

# Event reasons (pkg/kubelet/events).
PULLING, PULLED, FAILED, BACKOFF = "Pulling", "Pulled", "Failed", "BackOff"
NEVER_PULL = "ErrImageNeverPull"


def _tag(image: str) -> str | None:
    if "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def pull_policy(container: dict) -> str:
    """The explicit policy, else upstream's default: Always for :latest or no tag
    (and no digest), IfNotPresent otherwise."""
    if container.get("imagePullPolicy"):
        return container["imagePullPolicy"]
    tag = _tag(container.get("image", ""))
    return "Always" if tag in ("", "latest") else "IfNotPresent"


class ImageManager:
    def __init__(self, runtime, event: Callable[[dict, str, str, str], None],
                 backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic):
        self.runtime = runtime
        self.event = event
        self.backoff = backoff or Backoff()
        self.clock = clock

    @staticmethod
    def backoff_key(uid: str, image: str) -> str:
        return f"{uid}_{image}"

    async def ensure(self, ref: dict, container: dict, sandbox_config
                     ) -> tuple[str | None, tuple[str, str] | None]:
        """(image ref, None) when the image is there, else (None, (reason, message)).
        ``ref`` is the container's event reference (it carries the pod's uid)."""
        pod = ref
        image = container["image"]
        policy = pull_policy(container)
        present = await self.runtime.image_status(image)
        if present is not None and policy != "Always":
            self.event(pod, "Normal", PULLED,
                       f'Container image "{image}" already present on machine')
            return present.id, None
        if policy == "Never":
            msg = f'Container image "{image}" is not present with pull policy of Never'
            self.event(pod, "Warning", NEVER_PULL, msg)
            return None, (S.ERR_IMAGE_NEVER_PULL, msg)
        key = self.backoff_key(ref["uid"], image)
        if self.backoff.in_backoff_since_update(key):
            msg = f'Back-off pulling image "{image}"'
            self.event(pod, "Normal", BACKOFF, msg)
            return None, (S.IMAGE_PULL_BACKOFF, msg)
        self.event(pod, "Normal", PULLING, f'Pulling image "{image}"')
        start = self.clock()
        try:
            ref = await self.runtime.pull_image(image, sandbox_config)
        except Exception as exc:
            detail = getattr(exc, "details", None)
            err = detail() if callable(detail) else str(exc)
            self.backoff.next(key, self.backoff.clock())
            msg = f'Failed to pull image "{image}": {err}'
            self.event(pod, "Warning", FAILED, msg)
            return None, (S.ERR_IMAGE_PULL, msg)
        self.backoff.reset(key)
        took = self.clock() - start
        self.event(pod, "Normal", PULLED,
                   f'Successfully pulled image "{image}" in {took:.3f}s')
        return ref, None
