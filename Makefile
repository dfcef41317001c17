# Two entry points for a fresh clone (see README):
#   make run   set up .venv, run the drills, the sweep and the plot on the embedded teaching model, build the site
#   make test  set up .venv and run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test site drills sweep clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,docs,openvla]"
	touch $(STAMP)

setup: $(STAMP)

drills: setup
	$(BIN)/vla-ch2 drills --out runs/drills --videos runs/drills/videos --workers 2

sweep: setup
	$(BIN)/vla-ch2 sweep --out runs/sweep --episodes 50 --workers 2
	$(BIN)/vla-ch2 plot runs/sweep --out runs/sweep/first_close.png

site: setup
	bash scripts/build_site.sh

run: drills sweep site

test: setup
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs site site-instructor
