# One image with the three services (api, writer, fanout) and the operator's CLI
# (feedctl: migrate, lag, replay, rebuild-feeds, retention); the command picks one.
# Base images are pinned to versions; pin them by digest in your registry's CI
# (`FROM rust:1.95.0-bookworm@sha256:...`) for byte-identical rebuilds.
FROM rust:1.95.0-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: exactly the dependency versions of Cargo.lock, or fail.
RUN cargo build --release --locked --bins \
 && mkdir /out && cp target/release/api target/release/writer target/release/fanout target/release/feedctl /out/

FROM debian:12.12-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 feed \
 && useradd --system --uid 10001 --gid 10001 --no-create-home feed
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
ENV LISTEN_ADDR=0.0.0.0:5000
EXPOSE 5000
CMD ["api"]
