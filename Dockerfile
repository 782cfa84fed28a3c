# Multi-stage build: compile in the Rust image, run on slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY adapters adapters
COPY commands commands
COPY migrations migrations
COPY src src
RUN cargo build --release --locked --bin pincer

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 pincer
COPY --from=build /src/target/release/pincer /usr/local/bin/pincer
USER pincer
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/pincer"]
CMD ["serve"]
