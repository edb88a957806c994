"""Resource quantities (apimachinery resource.Quantity) for the kubelet.

One parser serves the scheduler and the kubelet: this re-exports the scheduler's
(bootstrap.agents.scheduler.resources) until it moves to bootstrap.api.
"""

from bootstrap.agents.scheduler.resources import (  # noqa: F401
    QuantityError,
    int_value,
    milli_value,
    parse_quantity,
)
