"""Run the fine-tuning zoo: every task fine-tuned and trained from scratch with the same budget at several
training-set sizes (learning curve), the forgetting report of the full-size run, a Markdown table and PNGs.

    python -m gfm_ase.finetune_zoo.run --from gfm-mini --readme finetune_zoo/README.md      # = gfm finetune-zoo ...
    python -m gfm_ase.finetune_zoo.run water inp --budget-scale 0.5                          # some tasks, half budget

Runs go to ``OUTDIR/<task>/n<size>/`` (each a ``gfm finetune`` output directory); a finished run is reused on a
rerun with the same settings (``--force`` reruns). ``OUTDIR/results.json`` and ``OUTDIR/results.md`` hold the table;
``--readme`` also rewrites the results section of that README (between its zoo-table markers) and puts the PNGs
next to it in ``results/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from gfm_ase.finetune_zoo.task import TaskSpec

REPO = Path(__file__).resolve().parents[1]
TASK_DIR = Path(__file__).resolve().parent / "tasks"
START, END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tasks", nargs="*", help="task names or YAML files (default: every finetune_zoo/tasks/*.yaml)")
    from gfm_ase.hub import default_model_help

    p.add_argument(
        "--from", dest="model", default=None, metavar="MODEL", help=f"pretrained model {default_model_help()}"
    )
    p.add_argument(
        "--stores",
        default=str(REPO / "work_data" / "stores"),
        help="folder of the shared-data stores (pretraining/corpus/ingest_shared.py --out)",
    )
    p.add_argument("--work", default=str(REPO / "work_data" / "zoo"), help="folder for generated/converted stores")
    p.add_argument(
        "--generated",
        default=str(REPO / "work_data" / "generated"),
        help="folder of the project's generated corpus (pretraining/corpus/generate_*.py); relative "
        "'convert' sources of tasks are looked up there",
    )
    p.add_argument("-o", "--outdir", default=str(REPO / "runs" / "zoo"), help="run folders and results")
    p.add_argument("--readme", default=None, help="rewrite the results section of this README (and its results/)")
    p.add_argument("--budget-scale", type=float, default=1.0, help="multiply every task's steps")
    p.add_argument("--sizes", type=int, nargs="*", default=None, help="learning-curve sizes for every task")
    p.add_argument(
        "--forgetting-max",
        type=int,
        default=40,
        help="held-out structures per pretraining dataset in the forgetting report",
    )
    p.add_argument("--replay-config", default=None, help="pretraining YAML of the model (see gfm finetune)")
    p.add_argument(
        "--data-dir",
        action="append",
        default=[],
        help="where to look for pretraining stores (repeatable; the --stores folder is searched too)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--note", default="", help="a line printed above the table (e.g. which model this is)")
    p.add_argument("--force", action="store_true", help="rerun finished runs")
    p.add_argument("--list", action="store_true", help="list the tasks and exit")


# ------------------------------------------------------------------------------------------------------ tasks
def task_files(names: list[str]) -> list[Path]:
    if not names:
        return sorted(TASK_DIR.glob("*.yaml"))
    out: list[Path] = []
    for n in names:
        p = Path(n)
        if p.suffix in (".yaml", ".yml") and p.is_file():
            out.append(p)
        elif (TASK_DIR / f"{n}.yaml").is_file():
            out.append(TASK_DIR / f"{n}.yaml")
        else:
            raise ValueError(f"unknown task {n!r} (tasks: {[q.stem for q in sorted(TASK_DIR.glob('*.yaml'))]})")
    return out


def prepare_store(
    task: TaskSpec, stores: Path, work: Path, log: Callable[[str], None] = print, generated: Path | None = None
) -> Path:
    """The task's store, built first when missing and the task says how."""
    from gfm_ase.finetune_zoo.task import resolve_store

    path = resolve_store(task.data.store, stores, work)
    if path.exists():
        return path
    prep = task.data.prepare
    if prep is None:
        raise FileNotFoundError(f"store {path} is missing (run pretraining/corpus/ingest_shared.py --out {stores}?)")
    path = work / Path(task.data.store).name
    if path.exists():
        return path
    work.mkdir(parents=True, exist_ok=True)
    log(f"[zoo] {task.name}: building {path}")
    if prep.kind == "generate_xtb":
        from gfm_ase.finetune_zoo.generate_xtb import generate

        generate(path, log=log, **prep.options)
    elif prep.kind == "generate_xtb_crystals":
        from gfm_ase.finetune_zoo.generate_xtb import generate_crystals

        generate_crystals(path, log=log, **prep.options)
    else:
        import glob
        import os

        from gfm_ase.data import StoreWriter
        from gfm_ase.data.converters import iter_records

        pats = [os.path.expanduser(os.path.expandvars(s)) for s in prep.sources]
        pats = [p if os.path.isabs(p) or generated is None else str(generated / p) for p in pats]
        files = sorted(f for p in pats for f in glob.glob(p))
        if not files:
            raise FileNotFoundError(
                f"task {task.name}: no file matches {prep.sources} (generate the data first: "
                f"{prep.source or 'see the task file'})"
            )
        with StoreWriter(
            path,
            name=path.stem,
            level_of_theory=prep.level_of_theory,
            code=prep.code,
            source=prep.source,
            license=prep.license,
        ) as w:
            for rec in iter_records(files, prep.format, options=prep.options):
                w.append(rec)
    return path


def _fingerprint(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_task(task: TaskSpec, args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """All runs of one task; returns its results entry."""
    from gfm_ase.finetune_zoo.config import FinetuneConfig, FinetuneHeadSpec
    from gfm_ase.finetune_zoo.data import Selection, nested_subset
    from gfm_ase.finetune_zoo.finetuning import finetune
    from gfm_ase.finetune_zoo.task import resolve_store, selection_splits
    from gfm_ase.checkpoint import read_model_json
    from gfm_ase.data import Store
    from gfm_ase.hub import resolve_model

    t0 = time.perf_counter()
    path = prepare_store(task, Path(args.stores), Path(args.work), log, Path(args.generated))
    store = Store(path)
    parts = selection_splits(store, task.data)
    test = (
        Selection(resolve_store(task.data.test_store, Path(args.stores), Path(args.work)))
        if task.data.test_store
        else (Selection(path, parts["test"]) if len(parts["test"]) else None)
    )
    train_idx = parts["train"]
    if task.max_train is not None:
        train_idx = nested_subset(train_idx, task.max_train, 0)
    n_all = len(train_idx)
    sizes = sorted({s for s in (args.sizes if args.sizes is not None else task.learning_curve) if s < n_all} | {n_all})
    steps = max(1, int(round(task.steps * args.budget_scale)))
    # a finished run is reused only for the same weights (a retrained model under the same name is not the same)
    model_id = read_model_json(resolve_model(args.model))["weights_sha256"]
    runs: list[dict[str, Any]] = []
    for n in sizes:
        full = n == n_all
        opts = dict(task.options)
        head = FinetuneHeadSpec(
            name=task.head, level_of_theory=task.level_of_theory, code=task.code, description=task.title
        )
        cfg = FinetuneConfig(
            head=head,
            strategy=task.strategy,
            steps=steps,
            batch_size=task.batch_size,
            baseline="scratch",
            eval_max_structures=task.eval_max_structures,
            forgetting_report=full,
            forgetting_max_structures=args.forgetting_max,
            device=args.device,
            **opts,
        )
        key = {
            "cfg": cfg.model_dump(mode="json", exclude_defaults=True),
            "n": n,
            "model": model_id,
            "store": str(path),
            "train": _fingerprint(train_idx.tolist()),
            "val": _fingerprint(parts["val"].tolist()),
        }
        rundir = Path(args.outdir) / task.name / f"n{n}"
        stamp = rundir / "zoo_run.json"
        if (
            not args.force
            and stamp.is_file()
            and (rundir / "metrics.json").is_file()
            and json.loads(stamp.read_text()).get("fingerprint") == _fingerprint(key)
        ):
            m = json.loads((rundir / "metrics.json").read_text())
            log(f"[zoo] {task.name} n={n}: reusing {rundir}")
        else:
            if rundir.exists():
                shutil.rmtree(rundir)  # an unfinished or outdated run of this runner
            m = finetune(
                args.model,
                Selection(path, train_idx),
                val=Selection(path, parts["val"]),
                test=test,
                outdir=rundir,
                config=cfg,
                task_name=task.name,
                n_train=n,
                replay_config=args.replay_config,
                data_dirs=[*args.data_dir, args.stores],
                log=log,
                command=f"zoo task {task.name} n={n}",
            )
            stamp.write_text(json.dumps({"fingerprint": _fingerprint(key), "key": key}, indent=1))
        runs.append(m)
    # wall time of the runs themselves (also right when finished runs were reused)
    return {
        "task": task.model_dump(mode="json"),
        "store": str(path),
        "n_available": n_all,
        "sizes": sizes,
        "steps": steps,
        "runs": runs,
        "wall_s": float(sum(m["wall_s"] for m in runs)),
        "this_call_s": time.perf_counter() - t0,
    }


# ------------------------------------------------------------------------------------------------------ output
def _get(m: dict[str, Any], which: str, split: str, key: str) -> Any:
    block = m.get(which) or {}
    return (block.get(split) or {}).get(key)


def _split(m: dict[str, Any]) -> str:
    from gfm_ase.finetune_zoo.finetuning import headline_split

    return headline_split(m)


def _f(v: float | None, nd: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:.{nd}f}" if abs(v) < 1000 else f"{v:.0f}"


def beats(entry: dict[str, Any]) -> tuple[int, int, bool | None]:
    """(sizes where fine-tuning beats scratch on the task metric, sizes compared, beats at the largest size)."""
    metric = entry["task"]["metric"]
    wins = total = 0
    last: bool | None = None
    for m in entry["runs"]:
        s = _split(m)
        a, b = _get(m, "finetuned", s, metric), _get(m, "scratch", s, metric)
        if a is None or b is None:
            continue
        total += 1
        wins += a < b
        last = a < b
    return wins, total, last


def forgetting_cell(m: dict[str, Any]) -> str:
    rep = m.get("forgetting") or {}
    parts: list[str] = []
    for h, r in rep.items():
        if r["status"] != "ok":
            parts.append(f"{h}: n/a")
            continue
        b, a = r["before"], r["after"]
        bf, af = b.get("forces_mae_meV_A"), a.get("forces_mae_meV_A")
        be, ae = b.get("energy_mae_meV_atom"), a.get("energy_mae_meV_atom")
        parts.append(f"{h} F {_f(bf, 0)}→{_f(af, 0)}, E {_f(be, 0)}→{_f(ae, 0)}")
    return "<br>".join(parts) if parts else "–"


def table(results: list[dict[str, Any]], plot_prefix: str) -> str:
    head = (
        "| task | data, level of theory | strategy | steps × batch | n_train | fine-tuned E / F | scratch E / F | "
        "FT better (sizes) | forgetting: other heads, F meV/Å and E meV/atom before→after | wall s | curve |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows: list[str] = []
    for e in results:
        t = e["task"]
        if e.get("error"):
            rows.append(f"| {t['name']} | {t['title']} | {t['strategy']} | | – | not run: {e['error']} | | | | | |")
            continue
        m = e["runs"][-1]
        s = _split(m)
        ft = f"{_f(_get(m, 'finetuned', s, 'energy_mae_meV_atom'))} / {_f(_get(m, 'finetuned', s, 'forces_mae_meV_A'))}"
        sc = f"{_f(_get(m, 'scratch', s, 'energy_mae_meV_atom'))} / {_f(_get(m, 'scratch', s, 'forces_mae_meV_A'))}"
        wins, total, last = beats(e)
        metric = "F" if t["metric"].startswith("forces") else "E"
        verdict = f"{'yes' if last else 'NO'} on {metric} ({wins}/{total})" if total else "–"
        unseen = m.get("elements_unseen_by_trunk") or []
        extra = f"; new elements {', '.join(unseen)}" if unseen else ""
        split_note = "" if s == "test" else " (val)"
        rows.append(
            f"| {t['name']} | {t['title']}, {t['level_of_theory']}{extra} | {t['strategy']} | "
            f"{e['steps']} × {t['batch_size']} | "
            f"{m['task']['n_train']} | {ft}{split_note} | {sc} | {verdict} | {forgetting_cell(m)} | "
            f"{e['wall_s']:.0f} | [png]({plot_prefix}{t['name']}.png) |"
        )
    return head + "\n".join(rows) + "\n"


def plot(entry: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    t = entry["task"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, label in (
        (axes[0], "energy_mae_meV_atom", "energy MAE (meV/atom)"),
        (axes[1], "forces_mae_meV_A", "force MAE (meV/Å)"),
    ):
        for which, style, name in (
            ("finetuned", "o-", f"fine-tuned ({t['strategy']})"),
            ("scratch", "s--", "from scratch"),
        ):
            xs: list[int] = []
            ys: list[float] = []
            for m in entry["runs"]:
                v = _get(m, which, _split(m), key)
                if v is not None:
                    xs.append(m["task"]["n_train"])
                    ys.append(v)
            if xs:
                ax.plot(xs, ys, style, label=name)
        ax.set_xscale("log")
        if ax.lines:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        else:
            ax.text(0.5, 0.5, "no labels", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("training structures")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{t['name']}: {t['title']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_outputs(results: list[dict[str, Any]], args: argparse.Namespace, command: str, total_s: float) -> str:
    from gfm_ase.finetune_zoo.finetuning import machine_info
    from gfm_ase.fileio import atomic_write_bytes

    out = Path(args.outdir)
    readme = Path(args.readme) if args.readme else None
    plots = (readme.parent / "results") if readme else (out / "plots")
    for e in results:
        if not e.get("error"):
            plot(e, plots / f"{e['task']['name']}.png")
    mi = machine_info()
    model = results[0]["runs"][0]["model"] if results and results[0].get("runs") else {"from": args.model}
    lines = [
        f"Produced by `{command}` on {mi.get('cpu', mi['processor'])} ({mi['cpu_count']} cores, "
        f"torch {mi['torch']} with {mi['torch_threads']} thread(s){', GPU ' + mi['gpu'] if 'gpu' in mi else ''})"
        f", {time.strftime('%Y-%m-%d')}: {sum(e.get('wall_s', 0.0) for e in results) / 60:.1f} min of "
        f"training and evaluation (this call {total_s / 60:.1f} min, finished runs reused).",
        f"Pretrained model: `{model.get('name', args.model)}` (`{model.get('from', args.model)}`, weights sha256 "
        f"{str(model.get('weights_sha256', ''))[:12]}...). Budget scale {args.budget_scale}.",
    ]
    if args.note:
        lines.append(args.note)
    lines.append(
        "Errors on the task's test split (val where the task has none): energy MAE meV/atom, force MAE "
        "meV/Å, at the largest training size; 'FT better' compares the task's headline metric at the largest "
        "size (and counts the learning-curve sizes where fine-tuning wins). Forgetting: the pretrained heads' "
        f"errors on at most {args.forgetting_max} held-out structures per pretraining dataset, before → "
        "after fine-tuning at the largest size. Wall time: all runs of the task (both models, every size)."
    )
    prefix = "results/" if readme else "plots/"
    md = "\n\n".join(lines) + "\n\n" + table(results, prefix)
    atomic_write_bytes(out / "results.md", md.encode())
    atomic_write_bytes(
        out / "results.json",
        json.dumps({"command": command, "machine": mi, "results": results}, indent=1, default=str).encode(),
    )
    if readme:
        text = readme.read_text() if readme.exists() else f"{START}\n{END}\n"
        if START not in text or END not in text:
            text += f"\n{START}\n{END}\n"
        a, rest = text.split(START, 1)
        _, b = rest.split(END, 1)
        atomic_write_bytes(readme, (a + START + "\n" + md + END + b).encode())
    return md


def main_from_args(args: argparse.Namespace) -> int:
    from gfm_ase.finetune_zoo.task import load_task
    from gfm_ase.hub import default_model

    if args.model is None:
        args.model = default_model()

    try:
        tasks = [load_task(p) for p in task_files(args.tasks)]
    except ValueError as exc:
        from gfm_ase.cli.errors import report

        return report("gfm finetune-zoo", exc, getattr(args, "debug", False))
    if args.list:
        for t in tasks:
            print(f"{t.name:18s} {t.strategy:9s} {t.steps:5d} steps  {t.title}")
        return 0
    command = "gfm finetune-zoo " + " ".join(
        shlex.quote(a) for a in sys.argv[2 if "finetune-zoo" in sys.argv[1:2] else 1 :]
    )
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    for t in tasks:
        try:
            results.append(run_task(t, args))
        except (FileNotFoundError, ValueError) as exc:
            print(f"[zoo] {t.name}: not run: {exc}", file=sys.stderr)
            results.append({"task": t.model_dump(mode="json"), "error": str(exc)})
    md = write_outputs(results, args, command, time.perf_counter() - t0)
    print(md)
    return 0 if all(not e.get("error") for e in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return main_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
