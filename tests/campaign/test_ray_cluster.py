"""A campaign on a two-node Ray cluster on this machine (127.0.0.1 only) that loses a
node in the middle: Ray reruns the lost node's tasks and the rows stay the same.

The nodes come from Ray's test utility `ray.cluster_utils.Cluster` (a head and a
second raylet, one CPU each): `ray start --address` refuses a second node when
Ray is kept on the loopback address, and without that Ray binds the machine's
network address.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from jsma.campaign import Campaign, CampaignSpec, InProcess
from jsma.campaign.ray_engine import LOOPBACK_ONLY, RayEngine
from jsma.data import Dataset
from tests.campaign.conftest import _comparable, _model

os.environ.update(LOOPBACK_ONLY)  # before Ray is imported: it reads this then
import ray
from ray.cluster_utils import Cluster

SPEC = CampaignSpec(splits=("validation", "test"), samples=8, unit_size=2)  # 8 units


class Slow(nn.Module):
    """The same outputs, a little later (units long enough to lose a node during one);
    notes in `marks` each node it has run on."""

    def __init__(self, inner: nn.Module, marks: Path) -> None:
        super().__init__()
        self.inner, self.marks = inner, str(marks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        node = ray.get_runtime_context().get_node_id()
        Path(self.marks, node).touch()
        time.sleep(0.02)
        out: torch.Tensor = self.inner(x)
        return out


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    two_nodes = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    two_nodes.add_node(num_cpus=1)
    try:
        yield two_nodes
    finally:
        ray.shutdown()
        two_nodes.shutdown()


@pytest.mark.slow
def test_a_node_leaving_mid_campaign_costs_nothing(
    cluster: Cluster, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    Campaign.run(tmp_path / "reference", SPEC, _model(), tiny_dataset, engine=InProcess())
    reference = _comparable(Campaign.open(tmp_path / "reference").results())
    directory = tmp_path / "run"
    engine = RayEngine(address=cluster.address, workers=2)
    outcome: list[object] = []
    marks = tmp_path / "marks"
    marks.mkdir()
    second = next(node for node in cluster.list_all_nodes() if not node.head)

    def campaign() -> None:
        try:
            model = Slow(_model(), marks)
            outcome.append(Campaign.run(directory, SPEC, model, tiny_dataset, engine=engine))
        except BaseException as error:  # reported below
            outcome.append(error)

    thread = threading.Thread(target=campaign)
    thread.start()
    deadline = time.monotonic() + 120
    while not (marks / second.node_id).exists() and thread.is_alive():  # a unit began there
        assert time.monotonic() < deadline, "no unit ran on the second node in time"
        time.sleep(0.01)
    landed = len(list((directory / "units").glob("*.parquet")))
    cluster.remove_node(second)  # the second raylet and its workers go, mid-unit
    thread.join(timeout=180)
    assert not thread.is_alive()
    status = outcome[0]
    assert not isinstance(status, BaseException), status
    assert landed < 8, "the campaign ended before the node left"
    assert _comparable(Campaign.open(directory).results()) == reference
