# Builds the server the way C memcached's build leaves it: ./memcached, ./memcached-debug
# (debug-only commands such as `debugtime` on) and ./timedrun in the repository root, so the
# Perl test suite (ours in t/, or upstream's) runs against them as is.

CARGO ?= cargo
PROVE ?= prove
DEBUG_TARGET_DIR := target/debug-commands
PORT ?= 11211

.PHONY: all build setup setup-test install-pkgs run test check cargo-test prove prove-seccomp clean fuzz bench-protocol images images-test install

all: build

build:
	$(CARGO) build --release --locked --bins
	$(CARGO) build --release --locked --bin memcached --features debug-commands --target-dir $(DEBUG_TARGET_DIR)
	@# copy then rename, so a running server's binary can be replaced
	cp target/release/memcached memcached.new && mv -f memcached.new memcached
	cp target/release/timedrun timedrun.new && mv -f timedrun.new timedrun
	cp $(DEBUG_TARGET_DIR)/release/memcached memcached-debug.new && mv -f memcached-debug.new memcached-debug

# Installs what a fresh Debian machine with the Rust toolchain lacks: cmake and libclang for
# building libevent from libevent-sys's bundled source, Perl's prove and modules for t/,
# and the libraries the server links: libseccomp, OpenSSL (-Z) and Cyrus SASL (-S).
SETUP_PKGS := cmake libclang-dev make perl netcat-openbsd libseccomp-dev libssl-dev pkg-config openssl libsasl2-dev
# For the tests only: Debian's C memcached (1.6.18), which t/stats-vs-debian.t starts on a
# port of its own to compare stat names with (its packaged service is not used), valgrind,
# under which t/stop-valgrind.t runs the server through each kind of stop, Perl's TLS client
# for t/tls.t, SASL's saslpasswd2 and mechanism plugins (PLAIN, CRAM-MD5) for the -S tests, and
# Prometheus with promtool, which t/metrics-prometheus.t scrapes the metrics endpoint with.
TEST_PKGS := memcached valgrind libio-socket-ssl-perl sasl2-bin libsasl2-modules prometheus
setup:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(SETUP_PKGS)"

setup-test:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(SETUP_PKGS) $(TEST_PKGS)"

install-pkgs:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" -ne 0 ] && sudo=sudo; \
	  echo "installing:$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

# Sets up, builds and runs the server in the foreground on port $(PORT) (Ctrl-C stops it).
run: setup build
	./memcached -p $(PORT) -u $$(id -un) -vv

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings
	$(CARGO) clippy --release --locked --all-targets --features debug-commands --target-dir $(DEBUG_TARGET_DIR) -- -D warnings

cargo-test:
	$(CARGO) test --release --locked

prove: build
	$(PROVE) -It/lib t/

# The wire tests of the features that run under -o drop_privileges beyond C's filters (TLS,
# SASL, ascii auth with its SIGHUP reload, the -e metadata written at a graceful stop) and
# extstore's reads through workers and the metrics thread, every server started with the strict
# filters.
SECCOMP_TESTS := t/tls.t t/binary-sasl-auth.t t/ascii-auth-rules.t t/meta-get.t t/watch.t \
	t/restart-cache.t t/shutdown.t t/extstore-reads.t t/metrics.t
prove-seccomp: build
	T_MEMD_DROP_PRIVILEGES=1 $(PROVE) -It/lib $(SECCOMP_TESTS)

# Every test: formatting and lints, unit tests, then the wire tests in t/.
test: setup-test check cargo-test prove prove-seccomp

# Installs the server, its man page and the systemd pieces under $(DESTDIR)$(PREFIX).
PREFIX ?= /usr/local
install: build
	install -D -m 0755 memcached $(DESTDIR)$(PREFIX)/bin/memcached
	install -D -m 0644 doc/memcached.1 $(DESTDIR)$(PREFIX)/share/man/man1/memcached.1
	install -D -m 0755 scripts/systemd-memcached-wrapper \
	  $(DESTDIR)$(PREFIX)/share/memcached/scripts/systemd-memcached-wrapper
	install -D -m 0644 scripts/memcached.service $(DESTDIR)$(PREFIX)/share/memcached/memcached.service
	install -D -m 0644 scripts/memcached.conf $(DESTDIR)$(PREFIX)/share/memcached/memcached.conf

# Container images, not part of `make test`: images/build makes the minideb bases with
# debootstrap when the engine lacks them and builds the amd64 and arm64 images (arm64 runs
# under qemu-user-static; see images/build); images-test runs and checks them. From nothing
# (no base images, no debootstrap cache) `make images-test` took 7 min 45 s here on 2 cores:
# both debootstraps, both builds, then 74 checks in about 30 s.
IMAGE_ARCHES ?= amd64 arm64
IMAGE_PKGS := docker.io debootstrap nutcracker qemu-user-static
images:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(IMAGE_PKGS)"
	images/build $(IMAGE_ARCHES)
images-test: images
	images/test $(IMAGE_ARCHES)

# Fuzzing, not part of `make test`: each target runs FUZZ_SECONDS (default 30 minutes) from
# its seeds in fuzz/seeds, keeping what it finds in fuzz/corpus; a crash stops it and leaves
# the input in fuzz/artifacts. Needs a nightly toolchain; installs cargo-fuzz if missing.
FUZZ_SECONDS ?= 1800
FUZZ_TARGETS ?= text_request meta_flags binary_header stream
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  cargo +nightly fuzz run -O $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# Parsing and execution without a socket, in ns per operation (figures: bench/RESULTS.md).
bench-protocol:
	$(CARGO) bench --locked --bench protocol

clean:
	$(CARGO) clean
	rm -f memcached memcached-debug timedrun
