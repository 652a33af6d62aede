"""Where camera actors may run: their Ray resource and label demands, checked against nodes.

Pure: the node list is what ``ray.nodes()`` returns (``Alive``, ``NodeID``,
``NodeManagerAddress``, ``Resources``, ``Labels``), passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Demand:
    """What one actor asks of the node it runs on."""

    resources: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def actor_options(self) -> dict[str, Any]:
        """The ``.options(...)`` keywords for this demand (none for an empty one)."""
        options: dict[str, Any] = {}
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.labels:
            options["label_selector"] = dict(self.labels)
        return options


def advertises(nodes: Sequence[Mapping[str, Any]], resource: str) -> bool:
    """Whether any alive node has ``resource`` in its totals."""
    return any(n.get("Alive") and resource in (n.get("Resources") or {}) for n in nodes)


def camera_demand(
    resources: Mapping[str, float],
    labels: Mapping[str, str],
    slot_resource: str | None,
    nodes: Sequence[Mapping[str, Any]],
) -> Demand:
    """A camera's demand: its pinning, plus one camera slot when the cluster has a budget.

    A cluster "has a budget" when some alive node advertises ``slot_resource``; a single-node
    install without it runs its cameras with no slot demand.
    """
    wanted = dict(resources)
    if slot_resource and slot_resource not in wanted and advertises(nodes, slot_resource):
        wanted[slot_resource] = 1.0
    return Demand(resources=wanted, labels=dict(labels))


def _fits(demand: Demand, node: Mapping[str, Any]) -> bool:
    totals: Mapping[str, float] = node.get("Resources") or {}
    node_labels: Mapping[str, str] = node.get("Labels") or {}
    return all(totals.get(k, 0.0) >= v for k, v in demand.resources.items()) and all(
        node_labels.get(k) == v for k, v in demand.labels.items()
    )


def unschedulable_reason(demand: Demand, nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """Why no alive node could ever run ``demand`` (its totals, not what is free now), or None.

    A node that is busy does not make a demand unschedulable: the actor waits for it.
    """
    alive = [n for n in nodes if n.get("Alive")]
    if any(_fits(demand, n) for n in alive):
        return None
    wanted = [f"{k}>={v:g}" for k, v in sorted(demand.resources.items())]
    wanted += [f"label {k}={v}" for k, v in sorted(demand.labels.items())]
    return (
        f"no alive node offers {', '.join(wanted)} "
        f"({len(alive)} alive node(s)); not started, waiting for such a node"
    )


def infeasible_demands(
    demands: Mapping[str, Demand], nodes: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """For each named demand that no alive node can meet, the reason (see above)."""
    problems: dict[str, str] = {}
    for name, demand in demands.items():
        reason = unschedulable_reason(demand, nodes)
        if reason is not None:
            problems[name] = reason
    return problems


def waiting_reason(demand: Demand, available: Mapping[str, float]) -> str | None:
    """Why an actor with ``demand`` is probably still waiting to be placed, or None.

    ``available`` is what the cluster has free right now (``ray.available_resources()``, the
    sum over nodes). A demand for more of a resource than is free in all waits for a node
    with room, such as a free camera slot; the sum is an upper bound of what one node has, so
    None does not prove the actor was placed.
    """
    short = [
        f"{k}>={v:g} ({available.get(k, 0.0):g} free)"
        for k, v in sorted(demand.resources.items())
        if available.get(k, 0.0) < v
    ]
    if not short:
        return None
    return f"waiting for a node with a free {', '.join(short)}"
