# Build and run factlog. Used by docker-compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/factlog /usr/local/bin/factlog
# Where the worker keeps the checkpoint signing key (a volume in docker-compose.yml).
RUN mkdir -p /keys && chown nobody /keys && chmod 700 /keys
USER nobody
EXPOSE 8080
ENTRYPOINT ["factlog"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
