# syntax=docker/dockerfile:1
#
# The reference deployment (enterprise_gateway) as a small non-root image.
#
#   docker build -t kailash-gateway:0.1.0 .
#
# Run it as deploy/k8s/deployment.yaml does: the config mounted at
# /etc/kailash/gateway.toml, a writable volume for the uid 65532 at
# /var/lib/kailash (the audit spool), everything else read-only, e.g.
#
#   docker run --read-only --tmpfs /var/lib/kailash:uid=65532,gid=65532 \
#     -v "$PWD/gateway.toml:/etc/kailash/gateway.toml:ro" -p 8000:8000 kailash-gateway:0.1.0
#
# No container engine runs where this project's CI runs, so the image build
# itself is not tested there. What .ci/deploy/check.sh does check: this
# file's stages, its numeric non-root USER, and its cargo command, which it
# runs exactly on the CI machine before starting the binary that command
# built as that user with deploy/k8s's config.
#
# Pin both images by digest in your build (FROM image@sha256:...).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# One release build of the reference binary, with the reference
# deployment's features named (they are examples/Cargo.toml's defaults; the
# CI check fails when the two lists part): redis for the shared state,
# postgres for the audit trail, ldap and otel for directory sign-in and
# trace export, mimalloc as the allocator. Without the line tables the
# workspace's release profile keeps (Cargo.toml: debug = "line-tables-only"):
# they make the binary 212 MB instead of 51 MB and the build slower, and a
# backtrace still names every function (only debug info is stripped).
RUN cargo build --locked --release --config profile.release.debug=false -p kailash-examples --bin enterprise_gateway --no-default-features --features redis,postgres,ldap,otel,mimalloc

# glibc and libgcc from Debian 12 (as the builder), CA certificates for
# rustls's system roots (Redis, PostgreSQL, OpenID providers over TLS),
# /etc/passwd with the nonroot user (65532), and no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/enterprise_gateway /usr/local/bin/enterprise_gateway
USER 65532:65532
# 8000: the API (server.listen); 9000: the operations listener (/metrics).
EXPOSE 8000 9000
ENTRYPOINT ["/usr/local/bin/enterprise_gateway", "--config", "/etc/kailash/gateway.toml", "--data-dir", "/var/lib/kailash"]
