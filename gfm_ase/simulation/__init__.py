"""Simulation engines beyond ASE: torch-sim (:mod:`gfm_ase.simulation.torchsim`) and LAMMPS
(:mod:`gfm_ase.simulation.lammps`); both optional (``pip install gfm-ase[engines]``) and imported on use.
See docs/simulation.md."""
