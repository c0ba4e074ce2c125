# Multi-stage build: compile in the Rust image, run on a slim Debian with only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p simba && strip target/release/simba

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 simba
COPY --from=build /src/target/release/simba /usr/local/bin/simba
USER simba
ENV PORT=8000
EXPOSE 8000
# Override the command for the other roles: `simba worker`, `simba migrate`.
CMD ["simba", "serve", "--no-workers"]
