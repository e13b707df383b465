"""The head router behind ``head="auto"``: a small classifier of cheap structure descriptors (element fractions,
periodicity, size, density) that predicts which head's training distribution a structure belongs to.

It is trained by :mod:`gfm_ase.pretraining.router` on the training splits of a pretraining config and shipped next
to the model's weights as ``router.safetensors`` (tensors) + ``router.json`` (description, checksums, held-out metrics).
Loading verifies both checksums and that the model's heads were trained on the datasets the router was trained on.

Decision rule (:meth:`HeadRouter.route`):

1. class probabilities of the router's heads;
2. heads whose training elements do not cover the structure's elements are ruled out (unless none covers it);
3. heads that the router cannot tell apart on its own training data (their training structures overlap, e.g. the
   same generated cells labelled by two teachers) form one *group*; the group with the largest summed probability
   wins and its *preferred* head (the first covering head in the group's order, which is the model's head order
   unless ``--prefer`` changed it) is used.

Heads are never mixed: one structure, one head (heads of different reference energies must not be averaged).
Models without ``router.json``: ``head="auto"`` on a single-head model uses its only head; on a multi-head model
it is an error (:class:`RouterError`) naming the heads and the command that trains a router.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gfm_ase.elements import MAX_Z

AUTO = "auto"
ROUTER_FORMAT = "gfm-ase-router"
ROUTER_FORMAT_VERSION = 1
ROUTER_JSON = "router.json"
ROUTER_WEIGHTS = "router.safetensors"
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}


class RouterError(ValueError):
    """A router that is missing, corrupt, tampered with, or does not belong to the model."""


# --------------------------------------------------------------------------------------------------- descriptors
def _composition(counts: np.ndarray, pbc: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Element fractions, one column per atomic number 0..MAX_Z-1."""
    n = counts.sum(axis=1, keepdims=True)
    return counts / np.maximum(n, 1)


def _periodic(counts: np.ndarray, pbc: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Fraction of periodic directions (0 molecule, 1 bulk; slabs and wires in between)."""
    return pbc.astype(np.float64).mean(axis=1, keepdims=True)


def _size(counts: np.ndarray, pbc: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """log of the number of atoms (per cell for periodic structures)."""
    return np.log(np.maximum(counts.sum(axis=1, keepdims=True), 1).astype(np.float64))


def _density(counts: np.ndarray, pbc: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """log of atoms per A^3 for fully periodic cells of non-zero volume, 0 otherwise (see ``periodic``)."""
    vol = np.abs(np.linalg.det(cell))
    ok = pbc.all(axis=1) & (vol > 1e-6)
    out = np.zeros((len(counts), 1))
    out[ok, 0] = np.log(counts.sum(axis=1)[ok] / vol[ok])
    return out


# name -> (function of (counts [n, MAX_Z], pbc [n, 3], cell [n, 3, 3]), number of columns)
FEATURES: dict[str, tuple[Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], int]] = {
    "composition": (_composition, MAX_Z),
    "periodic": (_periodic, 1),
    "size": (_size, 1),
    "density": (_density, 1),
}


def check_features(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise RouterError(f"unknown router feature(s) {unknown or list(names)}; known: {list(FEATURES)}")
    return list(names)


def feature_matrix(names: Sequence[str], counts: np.ndarray, pbc: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Descriptors [n, F] of ``n`` structures: element ``counts`` [n, MAX_Z] (column = atomic number), ``pbc``
    [n, 3] and ``cell`` [n, 3, 3]."""
    counts = np.asarray(counts, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(len(counts), 3)
    cell = np.asarray(cell, dtype=np.float64).reshape(len(counts), 3, 3)
    return np.concatenate([FEATURES[n][0](counts, pbc, cell) for n in check_features(names)], axis=1)


def counts_of(numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Element counts [1, MAX_Z] of one structure's atomic numbers."""
    z = np.asarray(numbers, dtype=np.int64)
    if z.size and (z.min() < 1 or z.max() >= MAX_Z):
        raise RouterError(f"atomic numbers outside 1..{MAX_Z - 1}: {sorted(set(z.tolist()))}")
    return np.bincount(z, minlength=MAX_Z)[None, :MAX_Z]


# --------------------------------------------------------------------------------------------------- the file
def _canonical(doc: dict) -> bytes:
    return json.dumps(
        {k: v for k, v in doc.items() if k != "json_sha256"}, sort_keys=True, separators=(",", ":")
    ).encode()


def json_checksum(doc: dict) -> str:
    return hashlib.sha256(_canonical(doc)).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def head_datasets(model_doc_heads: Sequence[dict]) -> dict[str, list[str]]:
    """{head: names of its training datasets} from a model document's ``config.heads`` (the router's binding)."""
    return {h["name"]: sorted(str(d.get("name")) for d in (h.get("datasets") or [])) for h in model_doc_heads}


def read_router_json(directory: str | Path) -> dict | None:
    """The verified ``router.json`` of a model directory; None when the model ships no router."""
    path = Path(directory) / ROUTER_JSON
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RouterError(f"{path} is corrupt (not valid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != ROUTER_FORMAT:
        raise RouterError(f"{path} is not a gfm-ase router file")
    if doc.get("format_version") != ROUTER_FORMAT_VERSION:
        raise RouterError(
            f"{path} has format_version {doc.get('format_version')!r}; this gfm-ase reads {ROUTER_FORMAT_VERSION}"
        )
    if doc.get("json_sha256") != json_checksum(doc):
        raise RouterError(f"{path} failed its checksum: the router description was modified or corrupted")
    return doc


@dataclass
class RouteDecision:
    head: str
    probabilities: dict[str, float]  # of the router's heads, before masking and grouping
    covered: bool  # whether the chosen head was trained on every element of the structure


class HeadRouter:
    """A loaded router: ``route(numbers, pbc, cell)`` -> :class:`RouteDecision`.

    ``head_elements``: {head: atomic numbers it was trained on (empty: any)} of the model the router serves.
    """

    def __init__(self, doc: dict, tensors: dict[str, np.ndarray], head_elements: dict[str, set[int]]):
        self.doc = doc
        self.heads: list[str] = list(doc["heads"])
        self.features: list[str] = check_features(doc["features"])
        self.activation = ACTIVATIONS[doc["activation"]]
        self.mean = tensors["mean"]
        self.std = tensors["std"]
        self.layers = [
            (tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]) for i in range(int(doc["n_layers"]))
        ]
        self.groups: list[list[str]] = [list(g) for g in doc["groups"]]
        self.head_elements = head_elements

    @classmethod
    def load(cls, directory: str | Path, model_doc: dict) -> "HeadRouter | None":
        """The router of the model directory (None when it has none), verified against the model document."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        doc = read_router_json(directory)
        if doc is None:
            return None
        weights = directory / doc.get("weights_file", ROUTER_WEIGHTS)
        if not weights.is_file():
            raise RouterError(f"router weights {weights} are missing")
        digest = _sha256_file(weights)
        if digest != doc.get("weights_sha256"):
            raise RouterError(
                f"{weights} failed its sha256 check (expected {str(doc.get('weights_sha256'))[:12]}..., "
                f"got {digest[:12]}...): the file is corrupt or was modified"
            )
        heads = model_doc["config"]["heads"]
        bound = head_datasets(heads)
        if doc["model"]["head_datasets"] != {h: bound.get(h) for h in doc["model"]["head_datasets"]} or not set(
            doc["heads"]
        ) <= set(bound):
            raise RouterError(
                f"{directory / ROUTER_JSON} was trained for heads and datasets "
                f"{doc['model']['head_datasets']}, but the model's are {bound}: retrain the router "
                "(python -m gfm_ase.pretraining.router CONFIG --model DIR)"
            )
        try:
            tensors = load_file(str(weights))
        except Exception as exc:  # safetensors raises its own error types
            raise RouterError(f"cannot read {weights}: {exc}") from None
        from ase.data import atomic_numbers

        elements = {h["name"]: {atomic_numbers[e] for e in h.get("elements") or []} for h in heads}
        return cls(doc, {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}, elements)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities [n, heads] of descriptors ``x`` [n, F]."""
        h = (x - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = self.activation(h)
        h = h - h.max(axis=1, keepdims=True)
        p = np.exp(h)
        return p / p.sum(axis=1, keepdims=True)

    def covers(self, head: str, numbers: set[int]) -> bool:
        allowed = self.head_elements.get(head) or set()
        return not allowed or numbers <= allowed

    def decide(self, p: np.ndarray, numbers: set[int]) -> RouteDecision:
        """The head of one structure with class probabilities ``p`` [heads] and element set ``numbers``."""
        covering = [h for h in self.heads if self.covers(h, numbers)]
        usable = set(covering) or set(self.heads)  # nobody covers it: choose among all, the caller reports it
        prob = dict(zip(self.heads, (float(v) for v in p)))
        best, best_p = None, -1.0
        for group in self.groups:
            members = [h for h in group if h in usable]
            if members and sum(prob[h] for h in members) > best_p:
                best, best_p = members[0], sum(prob[h] for h in members)
        assert best is not None
        return RouteDecision(best, prob, best in covering)

    def route(self, numbers: Sequence[int] | np.ndarray, pbc: Any, cell: Any) -> RouteDecision:
        counts = counts_of(numbers)
        x = feature_matrix(self.features, counts, np.asarray(pbc, bool)[None], np.asarray(cell, float)[None])
        return self.decide(self.probabilities(x)[0], {int(z) for z in numbers})

    def describe(self) -> dict:
        """What ``gfm heads --json`` shows: features, heads, groups and the held-out metrics."""
        keys = ("heads", "features", "hidden", "activation", "groups", "metrics", "training", "weights_sha256")
        return {k: self.doc.get(k) for k in keys}


def router_description(model: str | Path | None) -> dict | None:
    """What ``gfm heads --json`` shows under ``"auto"`` for a built-in name, directory or URL: the verified
    router's heads, features, groups and held-out metrics; None when the model ships no router."""
    from gfm_ase.checkpoint import read_model_json
    from gfm_ase.hub import resolve_model

    path = resolve_model(model)
    router = HeadRouter.load(path, read_model_json(path))
    return None if router is None else router.describe()


def no_router_message(name: str, heads: Sequence[str]) -> str:
    return (
        f"head='auto' needs a router, and model {name} ships none ({ROUTER_JSON}); choose a head from "
        f"{list(heads)} or train one: python -m gfm_ase.pretraining.router CONFIG --model DIR"
    )


def load_router(model: Any, path: str | Path | None) -> HeadRouter | None:
    """The router of ``model`` (a :class:`~gfm_ase.model.GFMModel` loaded from directory ``path``; None for an
    in-memory model) for ``head="auto"``: None for a single-head model (its only head is the answer), else the
    verified router of the directory; :class:`RouterError` when a multi-head model ships none."""
    from gfm_ase.checkpoint import read_model_json

    if len(model.head_names) == 1:
        return None
    if path is None:
        raise RouterError(no_router_message("(in-memory)", model.head_names))
    router = HeadRouter.load(path, read_model_json(path))
    if router is None:
        raise RouterError(no_router_message(Path(path).name, model.head_names))
    return router


__all__ = [
    "ACTIVATIONS",
    "AUTO",
    "FEATURES",
    "HeadRouter",
    "ROUTER_FORMAT",
    "ROUTER_FORMAT_VERSION",
    "ROUTER_JSON",
    "ROUTER_WEIGHTS",
    "RouteDecision",
    "RouterError",
    "check_features",
    "counts_of",
    "feature_matrix",
    "head_datasets",
    "json_checksum",
    "load_router",
    "no_router_message",
    "router_description",
    "read_router_json",
]
