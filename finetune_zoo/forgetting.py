"""The forgetting report: every other head's errors on its held-out (test) split before and after fine-tuning.
Datasets pretrained without a test split are evaluated on their validation split (never trained on either).

The same structures are evaluated before and after (a seeded subset of at most ``max_structures`` per dataset,
when capped), with the same code as the trainer's validation (``gfm_ase.pretraining.metrics``), so the difference is the
effect of fine-tuning alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gfm_ase.finetune_zoo.data import capped
from gfm_ase.finetune_zoo.heldout import HeadData
from gfm_ase.pretraining import metrics as M

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel

KEYS = ("energy_mae_meV_atom", "forces_mae_meV_A", "stress_mae_meV_A3")


class ForgettingReport:
    """Evaluate ``heads`` (HeadData per head name) on a model; ``before`` is filled by :meth:`evaluate_before`."""

    def __init__(
        self,
        head_data: dict[str, HeadData],
        max_structures: int | None = 200,
        seed: int = 0,
        batch_size: int = 16,
        precision: str = "float32",
    ) -> None:
        self.head_data = head_data
        self.max_structures = max_structures
        self.seed = seed
        self.batch_size = batch_size
        self.precision = precision
        self.before: dict[str, dict[str, Any]] = {}
        self.after: dict[str, dict[str, Any]] = {}
        # the test split; a dataset pretrained without one (e.g. a 0.9/0.1/0 split) is evaluated on its validation
        # split, which was not trained on either (the report says which split was used)
        self.splits = {
            h: {d.name: ("test" if len(d.test) else "val") for d in hd.datasets} for h, hd in head_data.items() if hd.ok
        }
        self._graphs = {
            h: [capped(d.test if len(d.test) else d.val, max_structures, seed + k) for k, d in enumerate(hd.datasets)]
            for h, hd in head_data.items()
            if hd.ok
        }

    @torch.no_grad()
    def evaluate(self, model: GFMModel, device: torch.device | str | None = None) -> dict[str, dict[str, Any]]:
        """{head: {"head": metrics, "datasets": {name: metrics}}} for every available head."""
        p = next(model.parameters())
        device = device or p.device
        dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
        req = [q.requires_grad for q in model.parameters()]
        for q in model.parameters():
            q.requires_grad_(False)
        was_training = model.training
        model.eval()
        out: dict[str, dict[str, Any]] = {}
        try:
            for h, graphs in self._graphs.items():
                local = model.head_index(h)
                total = torch.zeros(M.WIDTH, dtype=torch.float64)
                per: dict[str, dict[str, Any]] = {}
                for ds, g in zip(self.head_data[h].datasets, graphs):
                    with torch.enable_grad():  # forces and stress are gradients
                        acc = M.evaluate_graphs(
                            model,
                            g,
                            np.arange(len(g)),
                            local,
                            batch_size=self.batch_size,
                            dtype=dtype,
                            device=device,
                            precision=self.precision,
                            stress=True,
                        )
                    per[ds.name] = M.summarize(acc)
                    total += acc
                out[h] = {"head": M.summarize(total), "datasets": per}
        finally:
            for q, r in zip(model.parameters(), req):
                q.requires_grad_(r)
            model.train(was_training)
        return out

    def evaluate_before(self, model: GFMModel, device: torch.device | str | None = None) -> None:
        self.before = self.evaluate(model, device)

    def evaluate_after(self, model: GFMModel, device: torch.device | str | None = None) -> None:
        self.after = self.evaluate(model, device)

    def report(self) -> dict[str, dict[str, Any]]:
        """JSON-able report: per head status, source, before/after/delta (meV units) per head and dataset."""
        rep: dict[str, dict[str, Any]] = {}
        for h, hd in self.head_data.items():
            if not hd.ok:
                rep[h] = {"status": "unavailable", "reason": hd.reason or "no data", "source": hd.source}
                continue
            b, a = self.before.get(h), self.after.get(h)
            entry: dict[str, Any] = {
                "status": "ok",
                "source": hd.source,
                "datasets": [d.name for d in hd.datasets],
                "splits": self.splits[h],
                "n_structures": b["head"]["n_structures"] if b else None,
                "max_structures_per_dataset": self.max_structures,
                "before": b["head"] if b else None,
                "after": a["head"] if a else None,
            }
            if b and a:
                entry["delta"] = {
                    k: (a["head"][k] - b["head"][k])
                    if (a["head"][k] is not None and b["head"][k] is not None)
                    else None
                    for k in KEYS
                }
                entry["by_dataset"] = {
                    n: {"before": b["datasets"][n], "after": a["datasets"][n]} for n in b["datasets"]
                }
            rep[h] = entry
        return rep
