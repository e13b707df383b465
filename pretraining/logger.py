"""Run logs on rank 0: CSV files always (``logs/train.csv``, ``logs/val.csv``), TensorBoard events when the
``tensorboard`` package is installed, a progress bar on a terminal, and otherwise a short console line every
:data:`HEARTBEAT_S` seconds (step, loss, steps/s, time left). CSV lines end in ``\n`` (also after a resume).

On resume, rows logged after the resumed checkpoint's step (by the interrupted run) are dropped, so the CSV files
read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gfm_ase.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

TRAIN_COLUMNS = [
    "step",
    "epoch",
    "lr",
    "loss",
    "loss_energy",
    "loss_forces",
    "loss_stress",
    "grad_norm",
    "structures",
    "atoms",
    "structures_per_s",
    "atoms_per_s",
    "wall_s",
]
VAL_COLUMNS = [
    "step",
    "epoch",
    "split",
    "kind",
    "name",
    "n_structures",
    "energy_mae_meV_atom",
    "energy_rmse_meV_atom",
    "forces_mae_meV_A",
    "forces_rmse_meV_A",
    "stress_mae_meV_A3",
    "stress_rmse_meV_A3",
]
HEARTBEAT_S = 20.0  # without a progress bar, a console line at least this often (no 60 s silences)


def _fmt(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


class CSVLog:
    def __init__(self, path: Path, columns: list[str], resume_step: int | None) -> None:
        self.path = path
        self.columns = columns
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")  # csv's default is \r\n
            w.writeheader()
            w.writerows(rows)
            atomic_write_bytes(path, buf.getvalue().encode())
        elif not path.is_file() or resume_step is None:
            atomic_write_bytes(path, (",".join(columns) + "\n").encode())
        self._f = open(path, "a", newline="")
        self._w = csv.writer(self._f, lineterminator="\n")

    def write(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise KeyError(f"unknown log columns {sorted(unknown)}")
        self._w.writerow([_fmt(row.get(c)) for c in self.columns])
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class RunLogger:
    def __init__(
        self,
        outdir: str | Path,
        enabled: bool,
        tensorboard: str = "auto",
        progress: bool = True,
        total_steps: int = 0,
        start_step: int = 0,
        resume: bool = False,
    ) -> None:
        self.enabled = enabled
        self.train: CSVLog | None = None
        self.val: CSVLog | None = None
        self.tb: SummaryWriter | None = None
        self.bar: tqdm | None = None
        self.total_steps, self.step = int(total_steps), int(start_step)
        self._beat = {"t": time.perf_counter(), "step": int(start_step)}
        if not enabled:
            return
        logs = Path(outdir) / "logs"
        resume_step = start_step if resume else None
        self.train = CSVLog(logs / "train.csv", TRAIN_COLUMNS, resume_step)
        self.val = CSVLog(logs / "val.csv", VAL_COLUMNS, resume_step)
        if tensorboard != "off":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                if tensorboard == "on":
                    raise RuntimeError("logging.tensorboard: on, but the tensorboard package is not installed")
            else:
                self.tb = SummaryWriter(str(logs / "tensorboard"), purge_step=start_step if resume else None)
        if progress and sys.stderr.isatty() and os.environ.get("TERM") != "dumb":
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def log_train(self, row: dict) -> None:
        if not self.enabled or self.train is None:  # the CSV logs exist exactly when enabled
            return
        self.train.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, row["step"])

    def log_val(self, rows: list[dict]) -> None:
        if not self.enabled or self.val is None:
            return
        for row in rows:
            self.val.write(row)
            if self.tb is not None:
                for k, v in row.items():
                    if isinstance(v, float) and k not in ("step", "epoch"):
                        self.tb.add_scalar(f"{row['split']}/{row['kind']}/{row['name']}/{k}", v, row["step"])

    def progress(self, n: int = 1, **postfix: object) -> None:
        self.step += n
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
        elif self.enabled:  # no bar (not a terminal, or progress off): a short line every HEARTBEAT_S seconds
            now = time.perf_counter()
            dt = now - self._beat["t"]
            if dt >= HEARTBEAT_S and self.step < self.total_steps:
                rate = (self.step - self._beat["step"]) / dt
                left = (self.total_steps - self.step) / rate if rate > 0 else float("nan")
                extra = "".join(f" {k} {v}" for k, v in postfix.items())
                self.message(f"step {self.step}/{self.total_steps}{extra} ({rate:.2f} steps/s, ~{left:.0f} s left)")
                self._beat = {"t": now, "step": self.step}

    def close(self) -> None:
        if not self.enabled:
            return
        for x in (self.train, self.val):
            if x is not None:
                x.close()
        if self.tb is not None:
            self.tb.close()
        if self.bar is not None:
            self.bar.close()
