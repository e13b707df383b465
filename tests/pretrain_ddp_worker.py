"""Worker of the distributed pretraining tests (run under torchrun or mpiexec; not a test module).

Takes a few training steps with the real Trainer and writes, per rank: the synchronised gradients of the first
step, the parameters after the last step, the names of the heads it holds and the logged rows; then writes a
checkpoint and the final model like `gfm pretrain` does.
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import yaml
from safetensors.torch import save_file


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("outdir")
    p.add_argument("result")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    from gfm_ase.pretraining.config import load_config
    from gfm_ase.pretraining.trainer import Trainer

    overrides = {}
    for item in args.set:
        k, _, v = item.partition("=")
        overrides[k] = yaml.safe_load(v)
    tr = Trainer(load_config(args.config, overrides), args.outdir)
    result = Path(args.result)
    result.mkdir(parents=True, exist_ok=True)
    rank = tr.env.rank
    states: collections.deque = collections.deque()
    rows = []
    for k, batch in enumerate(tr._loader(args.steps, states)):
        row = tr.backward_step(batch)
        if k == 0:
            save_file({n: q.grad.detach().contiguous() for n, q in tr.model.named_parameters()},
                      str(result / f"grads_{rank}.safetensors"))
        rows.append(tr.optimizer_step(row))
        tr._consumed_sampler_state = states.popleft()
        rows[-1]["n_local"] = 0 if batch is None else batch.num_graphs
    save_file({n: q.detach().contiguous() for n, q in tr.model.named_parameters()},
              str(result / f"params_{rank}.safetensors"))
    info = {"rank": rank, "world_size": tr.env.world_size, "launcher": tr.env.launcher, "backend": tr.env.backend,
            "heads": tr.model.head_names, "rows": rows}
    (result / f"info_{rank}.json").write_text(json.dumps(info))
    tr.save_checkpoint()
    tr.finish()
    tr.env.shutdown()


if __name__ == "__main__":
    main()
