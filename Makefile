# virt-up: the two commands are `make demo` and `make test`; everything they need
# (packages, libvirt daemons, the local base image) is set up by them.

CARGO     ?= cargo
# These project machines have no usable KVM: guests run under TCG. On a host with
# working KVM run e.g. `make demo VIRT_TYPE=kvm`.
VIRT_TYPE ?= qemu
export VIRT_TYPE

.PHONY: all build host base-image cloudinit-image demo test test-unit test-integration test-realvm test-install test-deb deb lint lint-tools man bench bench-virt-maker bench-gen-vm-image install uninstall

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
test: host base-image lint test-unit test-integration test-install test-deb test-realvm

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

# Install the binaries, man pages, completions, the shipped configuration (into
# $(SYSCONFDIR)/virt-up, never over files that are there), playbooks and guest files.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
BINDIR      = $(DESTDIR)$(PREFIX)/bin
MANDIR      = $(DESTDIR)$(PREFIX)/share/man/man1
SHAREDIR    = $(DESTDIR)$(PREFIX)/share/virt-up
CONFDIR     = $(DESTDIR)$(SYSCONFDIR)/virt-up
BINARIES    = virt-up virt-maker gen-vm-image

install: build
	install -d $(BINDIR) $(MANDIR) $(SHAREDIR)/guest \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	for b in $(BINARIES); do \
	  install -m 0755 target/release/$$b $(BINDIR)/$$b; \
	  install -m 0644 man/$$b.1 $(MANDIR)/$$b.1; \
	  install -m 0644 completions/$$b.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$b; \
	  install -m 0644 completions/$$b.zsh $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_$$b; \
	  install -m 0644 completions/$$b.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$b.fish; \
	done
	install -m 0644 guest/* $(SHAREDIR)/guest/
	install -d $(CONFDIR)/templates.d $(CONFDIR)/scripts $(CONFDIR)/playbooks
	cp -n etc/virt-up/settings.cfg $(CONFDIR)/
	cp -n etc/virt-up/templates.d/*.cfg $(CONFDIR)/templates.d/
	cp -n etc/virt-up/scripts/* $(CONFDIR)/scripts/
	cp -n playbooks/*.yml $(CONFDIR)/playbooks/

# Everything install wrote but the configuration in $(SYSCONFDIR)/virt-up (it may hold
# the user's edits: remove it by hand).
uninstall:
	for b in $(BINARIES); do \
	  rm -f $(BINDIR)/$$b $(MANDIR)/$$b.1 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$b \
	    $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_$$b \
	    $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$b.fish; \
	done
	rm -rf $(SHAREDIR)

# install into a scratch root, run the installed binaries, uninstall, and check that
# only the configuration is left.
test-install:
	scripts/test-install.sh

# A Debian package of the install tree (dpkg-deb): target/debian/virt-up_VERSION_ARCH.deb.
deb: build
	scripts/make-deb.sh

# make deb, installed by dpkg into a scratch root, run, upgraded over an edit, removed.
test-deb: build
	scripts/test-deb.sh

# Regenerate the man page and completions from the clap definitions.
man:
	$(CARGO) run --locked --example docs

bench: host build base-image
	bench/run.sh

# The step cache's own speed (virt-maker): no-change rebuild and last-step overhead.
bench-virt-maker: build
	bench/virt_maker.sh

# gen-vm-image single vs qemu-img convert vs the Python gen-vm-image (bench/run.sh calls it).
bench-gen-vm-image: host
	bench/gen_vm_image.py
