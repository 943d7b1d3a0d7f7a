"""A real Ray cluster of several nodes on this machine for the cluster tests: each node is its own raylet with its
own ports and worker processes (``ray.cluster_utils.Cluster``), and ``shutdown`` ends exactly the processes it
started. Nodes share the machine's network namespace: separate namespaces need root and veth plumbing that CI
machines do not all allow (docs/cluster.md)."""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray import serve
from ray.cluster_utils import Cluster
from ray.util.state import list_actors

from tests.support.messaging import free_port


class RayCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 2) -> None:
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": cpus_per_node, "include_dashboard": True, "dashboard_port": free_port()})
        self.workers = [self.cluster.add_node(num_cpus=cpus_per_node) for _ in range(nodes - 1)]
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        """The head's GCS address, as ``emo-stream serve --cluster`` takes it."""
        return self.cluster.address

    @property
    def node_ids(self) -> set[str]:
        return {self.cluster.head_node.node_id, *(w.node_id for w in self.workers)}

    def replicas(self, deployment: str, app: str = "emo-stream") -> dict[str, str]:
        """Live replicas of a deployment from Ray's state API: actor id → node id."""
        actors = list_actors(address=self.address, filters=[("class_name", "=", f"ServeReplica:{app}:{deployment}"),
                                                             ("state", "=", "ALIVE")], detail=True)
        return {a.actor_id: a.node_id for a in actors}

    def call(self, deployment: str, method: str, app: str = "emo-stream") -> Any:
        """One request to a deployment's method, from this process connected to the cluster for it alone."""
        ray.init(address=self.address, logging_level=logging.WARNING)
        try:
            return getattr(serve.get_deployment_handle(deployment, app), method).remote().result()
        finally:
            ray.shutdown()

    def shutdown(self) -> None:
        self.cluster.shutdown()
