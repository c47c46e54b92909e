"""DDP: two CPU processes (gloo) started by torchrun on 127.0.0.1 train the tiny model; both ranks end with identical
weights, the loss is finite and only rank 0 writes the run's files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from _trainer_testlib import smoke_config, tiny_datasets

from dfmvr_training.train_config import train_config_to_dict

RUNNER = textwrap.dedent(
    """
    import json, sys
    import torch
    from dfmvr_training.distributed import cleanup_distributed, init_distributed
    from dfmvr_training.train_config import load_train_config
    from dfmvr_training.trainer import Trainer

    config = load_train_config(json.loads(open(sys.argv[1]).read()))
    context = init_distributed(config.device)
    try:
        trainer = Trainer(config, dist_context=context)
        summary = trainer.fit()
        params = {k: v.detach().clone() for k, v in trainer.net.named_parameters()}
        torch.save({"params": params, "losses": trainer.losses, "world_size": context.world_size,
                    "ddp": type(trainer.module).__name__}, f"{sys.argv[2]}/rank{context.rank}.pt")
    finally:
        cleanup_distributed(context)
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_train_trainer_ddp_two_cpu_processes(tmp_path_factory, ict_npz, tmp_path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    data = tiny_datasets(tmp_path_factory, ict_npz)
    out = tmp_path / "run"
    config = smoke_config(
        data, out, steps=3, checkpoint_every=3, benchmark=None, image_every=0, num_threads=1, batch_size=2
    )
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
    for rank in ranks:
        assert len(rank["losses"]) == 3 and all(torch.isfinite(torch.tensor(rank["losses"])))
    assert ranks[0]["losses"] != ranks[1]["losses"]  # each rank saw its own half of the data
    p0, p1 = ranks[0]["params"], ranks[1]["params"]
    assert p0.keys() == p1.keys() and all(torch.equal(p0[k], p1[k]) for k in p0)
    # Rank 0 alone wrote the run: one metrics file with one line per log step, the checkpoint and the network.
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [3]
    assert next(r for r in records if r["kind"] == "info")["world_size"] == 2
    state = torch.load(out / "checkpoints" / "step_00000003" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # both ranks' random states, for --resume
    assert (out / "model.pt").is_file()
