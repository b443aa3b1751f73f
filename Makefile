# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv if needed, installs the project, runs the demo study (studies/demo.yaml:
#               IG's batch-size trend and Robbing the Fed's exact recoveries) and its one report
#   make test   the same set-up, then the test suite (this is what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install system-packages demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/orch launch studies/demo.yaml

# Debian's chromium renders the HTML report in a test and pdflatex (texlive, about 150 MB) compiles
# the exported LaTeX tables in another; the SLURM tests install slurm-wlm and munge themselves through
# slurm/local-cluster.sh (writing /etc/slurm/slurm.conf and /etc/munge/munge.key). All need root, as on
# CI; without root those tests skip. The SLURM tests stop the daemons they started when they end, unless
# the cluster was already up or ORCH_KEEP_CLUSTER=1 (`make test ORCH_KEEP_CLUSTER=1` keeps them running).
DEBIAN_TEST_PACKAGES := chromium texlive-latex-base texlive-latex-recommended

system-packages:
	@if [ "$$(id -u)" = 0 ] && ! { command -v chromium && command -v pdflatex \
	     && kpsewhich booktabs.sty; } >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends $(DEBIAN_TEST_PACKAGES) >/dev/null \
	    || (apt-get update -q && apt-get install -y -q --no-install-recommends $(DEBIAN_TEST_PACKAGES) >/dev/null); \
	fi

test: install system-packages
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python tests/benchmarks/bench_orchestrator.py
	$(BIN)/python tests/benchmarks/bench_analysis.py

clean:
	rm -rf $(VENV) runs
