"""The model: trunk registry, PaiNN trunk, energy heads and the autograd outputs."""

from gfm_ase.model import painn  # noqa: F401  (built-in trunks register themselves when imported)
from gfm_ase.model.gfm import GFMModel
from gfm_ase.model.outputs import predict
from gfm_ase.model.registry import TrunkFeatures, available_trunks, build_trunk, register_trunk

__all__ = ["GFMModel", "TrunkFeatures", "predict", "available_trunks", "build_trunk", "register_trunk"]
