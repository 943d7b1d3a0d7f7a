"""A real Ray cluster of several nodes on this machine for the cluster tests: each node is its own raylet with its
own ports and worker processes (``ray.cluster_utils.Cluster``), and ``shutdown`` ends exactly the processes it
started. Nodes share the machine's network namespace: separate namespaces need root and veth plumbing that CI
machines do not all allow (docs/cluster.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

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
        """One request to a deployment's method (its JSON result), from a process of its own connected to the
        cluster: a driver in the test process leaves Serve's router threads behind that reconnect after
        ``ray.shutdown`` and then block the cluster's own shutdown (it refuses to remove a node a driver is on)."""
        script = (
            "import json, logging, sys, ray\n"
            "from ray import serve\n"
            "ray.init(address=sys.argv[1], logging_level=logging.WARNING)\n"
            "handle = serve.get_deployment_handle(sys.argv[2], sys.argv[4])\n"
            "print(json.dumps(getattr(handle, sys.argv[3]).remote().result()))\n"
        )
        done = subprocess.run([sys.executable, "-c", script, self.address, deployment, method, app],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{deployment}.{method} failed:\n{done.stderr[-3000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def shutdown(self) -> None:
        self.cluster.shutdown()
