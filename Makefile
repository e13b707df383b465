# gfm-ase: `make test` and `make demo` set up .venv from nothing (reused when present).
# GPU users: make test TORCH_SPEC="torch"   (default pins the CPU build available on the dev machines)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: venv teachers test test-slow test-all test-gpu gpu-wheels demo clean lint typecheck

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	before=$$($(PY) -c "import torch; print(torch.__file__, torch.__version__)") && \
	  $(PY) -m pip install -q -e ".[test,engines,d3]" && \
	  after=$$($(PY) -c "import torch; print(torch.__file__, torch.__version__)") && \
	  { test "$$before" = "$$after" || { echo "make venv: pip replaced torch: $$before -> $$after" >&2; exit 1; }; }
	touch $(STAMP)

venv: $(STAMP)

# Peer potentials for `gfm validate ... --calculator gfm_ase.validation.peers:NAME` (validation/peers.py, docs/peers.md) in a
# venv of their own (same base interpreter as the main venv) that reuses the main venv's packages (torch, ase,
# gfm_ase) through a .pth file, so no second torch is installed. The .pth runs site.addsitedir, so the main venv's
# own .pth files (the editable gfm_ase) work there too; pip sees that torch and leaves it alone (checked below).
# chgnet 0.3.1, not 0.3.0: the chgnet 0.3.0 wheel lacks the pretrained weights, 0.3.1 ships the CHGNet 0.3.0
# weights (its CHGNet.load() default). sevenn 0.13.0 ships SevenNet-0, SevenNet-MF-0 and SevenNet-l3i5.
TEACHERS ?= .venv-teachers
TEACHER_SPECS ?= chgnet==0.3.1 sevenn==0.13.0
TPY := $(TEACHERS)/bin/python
TSTAMP := $(TEACHERS)/.installed

$(TSTAMP): $(STAMP)
	test -x $(TPY) || $$($(PY) -c "import sys; print(sys._base_executable)") -m venv $(TEACHERS)
	main=$$($(PY) -c "import sysconfig; print(sysconfig.get_path('purelib'))") && \
	  own=$$($(TPY) -c "import sysconfig; print(sysconfig.get_path('purelib'))") && \
	  echo "import site; site.addsitedir('$$main')" > "$$own/_gfm_project.pth"
	before=$$($(TPY) -c "import torch; print(torch.__file__, torch.__version__)") && \
	  $(TPY) -m pip install -qq --disable-pip-version-check $(TEACHER_SPECS) && \
	  after=$$($(TPY) -c "import torch; print(torch.__file__, torch.__version__)") && \
	  { test "$$before" = "$$after" || { echo "make teachers: pip replaced torch: $$before -> $$after" >&2; exit 1; }; }
	$(TPY) -c "import chgnet, sevenn, gfm_ase, gfm_ase.validation.peers"
	touch $(TSTAMP)

teachers: $(TSTAMP)

# ruff (pycodestyle + pyflakes rules on the whole tree), the formatter and mypy on the whole installed package:
# gfm_ase/ and the folders installed under it (pretraining/, finetune_zoo/, validation/). mypy runs on a tree of
# symbolic links in the installed layout (build/typecheck, made by gfm_ase._source_checkout.link_tree) so that it
# sees gfm_ase.pretraining.X under its real name (type checkers do not run the editable install's import hook).
# The linters come with the venv's test extra (pinned there).
RUFF_FORMATTED ?= gfm_ase pretraining finetune_zoo validation
TYPECHECK_TREE ?= build/typecheck
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check $(RUFF_FORMATTED)
	$(MAKE) --no-print-directory typecheck

typecheck: $(STAMP)
	$(PY) -c "from gfm_ase._source_checkout import link_tree; link_tree('$(TYPECHECK_TREE)')"
	cd $(TYPECHECK_TREE) && $(CURDIR)/$(PY) -m mypy --config-file $(CURDIR)/pyproject.toml -p gfm_ase

test: $(STAMP) $(TSTAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

# the CUDA checks (tests/test_gpu.py; skipped without a GPU): needs a CUDA build of torch in the venv
test-gpu: $(STAMP)
	$(PY) -m pytest -q -m gpu tests/test_gpu.py

# wheels of what a bare GPU image (torch, numpy, scipy, h5py present) lacks, for benchmarks/gpu_suite.sh there
GPU_WHEELS ?= ase==3.29.0 vesin==0.6.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
	typing-inspection==0.4.5
gpu-wheels: $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)

demo: $(STAMP)
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) $(TEACHERS) build *.egg-info
