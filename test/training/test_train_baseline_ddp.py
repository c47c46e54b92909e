"""DDP with a single-view baseline: two CPU processes (gloo) train the tiny Deep3DFace R-Net through its single-image
wrapper; both ranks end with identical weights, each fits the same skin model, rank 0 alone writes the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _baseline_testlib import TINY_DEEP3DFACE
from _trainer_testlib import smoke_config, tiny_datasets
from test_train_trainer_ddp import RUNNER, _free_port

from dfmvr_core.inference import load_checkpoint
from dfmvr_training.train_config import train_config_to_dict


def test_train_baseline_ddp_single_view_rnet(tmp_path_factory, ict_npz, tmp_path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    data = tiny_datasets(tmp_path_factory, ict_npz)
    out = tmp_path / "run"
    config = smoke_config(
        data, out, network_config=TINY_DEEP3DFACE, losses={}, steps=3, checkpoint_every=3, benchmark=None,
        image_every=0, num_threads=1, batch_size=2,
    )  # fmt: skip
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(train_config_to_dict(config)))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2"]
    rendezvous = ["--master_addr=127.0.0.1", f"--master_port={_free_port()}"]
    command = [*launcher, *rendezvous, str(runner), str(config_path), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["ddp"] == "DistributedDataParallel"
    assert ranks[0]["losses"] != ranks[1]["losses"] and all(len(r["losses"]) == 3 for r in ranks)
    p0, p1 = ranks[0]["params"], ranks[1]["params"]
    assert p0.keys() == p1.keys() and all(torch.equal(p0[k], p1[k]) for k in p0)
    assert (out / "skin_model.npz").is_file() and load_checkpoint(out / "model.pt").kind == "deep3dface"
