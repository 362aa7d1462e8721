# virt-up: the two commands are `make demo` and `make test`; everything they need
# (packages, libvirt daemons, the local base image) is set up by them.

CARGO     ?= cargo
# These project machines have no usable KVM: guests run under TCG. On a host with
# working KVM run e.g. `make demo VIRT_TYPE=kvm`.
VIRT_TYPE ?= qemu
export VIRT_TYPE

.PHONY: all build host base-image cloudinit-image demo test test-unit test-integration test-realvm lint lint-tools man bench bench-virt-maker bench-gen-vm-image

all: build

build:
	$(CARGO) build --release --locked

# Packages, libvirtd/virtlogd, the default network and pool (idempotent; needs root).
host:
	scripts/host-setup.sh

# A minimal Debian 12 image from Debian's packages (virt-maker's debootstrap importer),
# served as a local virt-builder repository under /var/cache/virt-up-base (cached, keyed
# by the recipe), for the real-VM tests and the benchmark.
base-image: host build
	scripts/build-base-image.sh >/dev/null

# The base image with cloud-init (NoCloud), for gen-vm-image configure's real-VM tests
# (cached next to the base image, keyed by both recipes).
cloudinit-image: base-image
	scripts/build-cloudinit-image.sh >/dev/null

# Create a VM from the shipped local template and run a command in it over SSH. The
# template's disk is made from Debian's packages by debootstrap (no prebuilt image).
demo: host build
	scripts/demo.sh

# All three tiers: unit, integration (libvirt test driver + fake tools), real VMs.
test: host base-image lint test-unit test-integration test-realvm

test-unit:
	$(CARGO) test --locked --lib

test-integration:
	$(CARGO) test --locked --test integration

test-realvm: host base-image cloudinit-image
	$(CARGO) test --locked --release --test realvm -- --test-threads=1 --nocapture

# Shell scripts shellcheck reads (the fake tools and the guest scripts have no .sh suffix).
SHELL_SCRIPTS = scripts/*.sh bench/*.sh tests/fixtures/bin/* etc/virt-up/scripts/*.sh guest/virt-up-identity guest/template-setup guest/generalize

lint: lint-tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	# The real-VM tier is not among --all-targets (test = false): checked on its own, so it
	# cannot stop compiling unnoticed until test-realvm.
	$(CARGO) clippy --locked --test realvm -- -D warnings
	shellcheck $(SHELL_SCRIPTS)
	scripts/deny-check.sh

# shellcheck comes with the host's packages (scripts/host-setup.sh, `make host`);
# cargo-deny is built once from crates.io where missing (0.20: the deny.toml format).
lint-tools:
	@command -v shellcheck >/dev/null || { echo "lint: shellcheck is missing: run 'make host' (or apt-get install shellcheck)" >&2; exit 1; }
	@$(CARGO) deny --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-deny --version "^0.20"

# Regenerate the man page and completions from the clap definitions.
man:
	$(CARGO) build --locked
	target/debug/virt-up --man > man/virt-up.1
	mkdir -p completions
	for s in bash zsh fish; do target/debug/virt-up --completions $$s > completions/virt-up.$$s; done

bench: host build base-image
	bench/run.sh

# The step cache's own speed (virt-maker): no-change rebuild and last-step overhead.
bench-virt-maker: build
	bench/virt_maker.sh

# gen-vm-image single vs qemu-img convert vs the Python gen-vm-image (bench/run.sh calls it).
bench-gen-vm-image: host
	bench/gen_vm_image.py
