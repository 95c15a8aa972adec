# syntax=docker/dockerfile:1
#
# The Playground server image: `playground serve` on 0.0.0.0:8080, data in
# /var/lib/playground, running as uid 10001. Build with BuildKit:
#
#   docker build -t playground:0.1.0 .
#
# See deploy/README.md for running it on Kubernetes.

# --- build -------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

WORKDIR /src
COPY . .

# The registry and target directory are BuildKit cache mounts, so rebuilds only
# compile what changed. A cache mount is not part of the image, so the binary is
# copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release -p playground-api --locked \
 && install -D -m 0755 target/release/playground /out/playground

# --- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="playground" \
      org.opencontainers.image.description="Playground: a self-hostable program-execution server" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 playground \
 && useradd --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/playground --shell /usr/sbin/nologin playground \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/playground

COPY --from=builder /out/playground /usr/local/bin/playground

ENV PLAYGROUND_LISTEN=0.0.0.0:8080 \
    PLAYGROUND_DATA_DIR=/var/lib/playground

WORKDIR /var/lib/playground
VOLUME ["/var/lib/playground"]

USER 10001:10001
EXPOSE 8080

ENTRYPOINT ["playground"]
CMD ["serve"]
