# One image with the three services (api, writer, fanout); the command picks one.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bins \
 && mkdir /out && cp target/release/api target/release/writer target/release/fanout /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home feed
COPY --from=build /out/ /usr/local/bin/
USER 10001
ENV LISTEN_ADDR=0.0.0.0:5000
EXPOSE 5000
CMD ["api"]
