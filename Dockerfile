# syntax=docker/dockerfile:1
#
# otp-gateway container image.
#
#   docker build -t otp-gateway:latest .
#   docker compose up -d --build
#
# Stages: builder (Rust, with dependency caching) -> runtime (debian slim, non-root).
# See docs/DEPLOYMENT.md for ports, volumes, proxies and backups.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------
# Stage "admin" (planned, not yet present): the admin single-page app.
# When admin-frontend/ lands, a node stage goes HERE. It installs the
# locked npm dependencies in admin-frontend/ and runs the Vite build; the
# builder stage below then copies that stage's dist/ output into
# admin-frontend/dist right before the final `cargo build`, so the binary
# embeds the freshly built SPA. (.dockerignore already lets admin-frontend/
# into the context and keeps node_modules out.)
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Stage "builder": compile the release binary.
# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder

WORKDIR /build
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# The toolchain pinned by rust-toolchain.toml (the base image ships the same
# version with the minimal profile; this adds the components the file lists).
COPY rust-toolchain.toml ./
RUN rustup toolchain install --no-self-update && rustc --version && cargo --version

# Dependency layer: only the manifests and the lock file, with stub sources
# for every crate target, so that this layer (all of crates.io compiled) is
# rebuilt only when Cargo.toml / Cargo.lock change, not on every source edit.
# Targets given an explicit `path = "...rs"` in a manifest (e.g. a future
# [[bench]]) get a stub too, because cargo refuses a manifest whose target
# files are missing. Afterwards the stub builds of our own two crates are
# forgotten (fingerprints removed) so the real build cannot mistake them for
# up to date.
COPY Cargo.toml Cargo.lock ./
COPY actors/Cargo.toml actors/
RUN set -eux; \
    mkdir -p src actors/src; \
    echo 'fn main() {}' > src/main.rs; \
    : > src/lib.rs; \
    : > actors/src/lib.rs; \
    for manifest in Cargo.toml actors/Cargo.toml; do \
        dir="$(dirname "$manifest")"; \
        sed -n 's/^path[[:space:]]*=[[:space:]]*"\([^"]*\.rs\)".*/\1/p' "$manifest" \
        | while read -r target; do \
            mkdir -p "$dir/$(dirname "$target")"; \
            [ -e "$dir/$target" ] || echo 'fn main() {}' > "$dir/$target"; \
        done; \
    done; \
    cargo build --release --locked --bin otp-gateway; \
    rm -rf src actors/src \
        target/release/.fingerprint/otp-gateway-* \
        target/release/.fingerprint/otp-actors-*

# Real sources: whatever .dockerignore allows (src/, actors/, migrations/, ...).
COPY . .
RUN set -eux; \
    find src actors/src -name '*.rs' -exec touch {} +; \
    cargo build --release --locked --bin otp-gateway; \
    install -D -m 0755 target/release/otp-gateway /out/otp-gateway

# ---------------------------------------------------------------------------
# Stage "runtime": slim Debian, non-root user `otp` (uid/gid 10001).
# ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

LABEL org.opencontainers.image.title="otp-gateway" \
      org.opencontainers.image.description="Self-hosted OTP gateway: SMS and voice over DIDWW with fraud detection and live status" \
      org.opencontainers.image.licenses="MIT"

# The binary is installed and given CAP_NET_BIND_SERVICE in ONE layer, here in
# the runtime stage: file capabilities live in an extended attribute that
# `COPY --from` does not reliably carry across stages (moby/buildkit#2250), and
# a separate `RUN setcap` after a COPY would store the binary twice.
# The capability lets the non-root process bind the admin port 80 (ADMIN_PORT)
# even where the container runtime does not lower
# net.ipv4.ip_unprivileged_port_start (host networking, Podman, Kubernetes).
# Its price: with the capability dropped from the bounding set (cap_drop: ALL
# without NET_BIND_SERVICE) the kernel refuses to exec the binary at all. For
# platforms that forbid adding it back, build with
#   --build-arg BIND_PRIVILEGED_PORTS=false
# and run with ADMIN_PORT >= 1024. libcap2-bin is only needed for setcap and is
# purged again.
ARG BIND_PRIVILEGED_PORTS=true
RUN --mount=type=bind,from=builder,source=/out/otp-gateway,target=/tmp/otp-gateway \
    set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    install -m 0755 /tmp/otp-gateway /usr/local/bin/otp-gateway; \
    if [ "$BIND_PRIVILEGED_PORTS" = true ]; then \
        apt-get install -y --no-install-recommends libcap2-bin; \
        setcap cap_net_bind_service=+ep /usr/local/bin/otp-gateway; \
        getcap /usr/local/bin/otp-gateway | grep -q cap_net_bind_service; \
        apt-get purge -y --auto-remove libcap2-bin; \
    fi; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 otp; \
    useradd --system --uid 10001 --gid otp --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin otp; \
    mkdir -p /data; \
    chown otp:otp /data; \
    chmod 0750 /data

# Defaults of SPEC §1/§2, spelled out so the image documents itself. Everything
# else comes from the environment (.env / -e / *_FILE secrets).
ENV DATABASE_PATH=/data/otp.db \
    HTTP_PORT=8080 \
    ADMIN_PORT=80

# Database (otp.db + -wal/-shm), its server key (otp.db.key) and optional
# MaxMind databases (asn.mmdb, country.mmdb) live here. Back it up: see
# docs/DEPLOYMENT.md.
VOLUME /data
WORKDIR /data

# 80: admin (ADMIN_PORT, only when ADMIN_ENABLED)  8080: API (HTTP_PORT)
# 5060/udp: SIP (SIP_PORT)  10000-10020/udp: RTP (RTP_PORT_START..RTP_PORT_END)
EXPOSE 80 8080 5060/udp 10000-10020/udp

# Numeric so that runtimes checking runAsNonRoot can verify it.
USER 10001:10001

# `otp-gateway healthcheck` GETs http://127.0.0.1:$HTTP_PORT/health and exits 0
# only on 200 (a degraded gateway answers 503 and counts as unhealthy).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/otp-gateway", "healthcheck"]

# SIGTERM starts the graceful shutdown (stop accepting, BYE live calls, flush
# the webhook outbox). Give it time: `docker stop -t 30`, or
# stop_grace_period: 30s in compose.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/otp-gateway"]
