# `make run` runs the default job; `make test` runs the tests. Both first
# install what a fresh Debian 12 machine lacks (apt, as root or with sudo)
# and the Python dependencies into .venv.

DEB_PACKAGES := qemu-system-x86 busybox-static linux-source-6.1 linux-source-6.12 build-essential \
	flex bison bc libelf-dev libssl-dev cpio git xz-utils python3-venv stress-ng public-inbox \
	ca-certificates
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
VENV := .venv

.PHONY: run test deps lint

run: deps $(VENV)/.installed
	$(VENV)/bin/kpv run

test: deps $(VENV)/.installed lint
	$(VENV)/bin/pytest -v -rs --durations=25

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# Only what is missing is installed, so a second `make` does not touch apt.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@
