# syntax=docker/dockerfile:1
# uwlr-gateway in a container: the same `cargo build --release` and the same `serve` as the
# README, run as an unprivileged user with the data dir on a volume.
#   docker build --build-arg UWLR_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t uwlr-gateway .
#   docker run -p 8080:8080 -v uwlr-data:/var/lib/uwlr-gateway uwlr-gateway
# CLI subcommands work on the same volume:
#   docker run --rm -v uwlr-data:/var/lib/uwlr-gateway uwlr-gateway clients list

FROM rust:1.95-bookworm AS build
# libxml2 for the schema check; libclang for the libxml crate's bindgen. Debian's versions
# are not pinned (DL3008): a pin breaks the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libxml2-dev libclang-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The build context has no .git (see .dockerignore): the commit comes in as an argument.
ARG UWLR_GIT_COMMIT=unknown
RUN cargo build --release --locked --bin uwlr-gateway \
    && cp target/release/uwlr-gateway /usr/local/bin/uwlr-gateway

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libxml2 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/uwlr-gateway uwlr \
    && install -d -o uwlr -g uwlr -m 0700 /var/lib/uwlr-gateway
COPY --from=build /usr/local/bin/uwlr-gateway /usr/local/bin/uwlr-gateway
# Numeric, so orchestrators can check runAsNonRoot.
USER 10001:10001
VOLUME ["/var/lib/uwlr-gateway"]
EXPOSE 8080
# Readiness, not just liveness: the store commits, the schemas are in place, and the publisher
# lag and dead letters are within ready_max_publisher_lag_secs and ready_max_dead_letters.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/ready"]
ENTRYPOINT ["uwlr-gateway", "--data-dir", "/var/lib/uwlr-gateway"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
