# gfm-ase: `make test` and `make demo` set up .venv from nothing (reused when present).
# GPU users: make test TORCH_SPEC="torch"   (default pins the CPU build available on the dev machines)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: venv test test-slow test-all test-gpu gpu-wheels demo clean bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
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
	rm -rf $(VENV) build *.egg-info
