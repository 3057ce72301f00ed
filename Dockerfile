# muster's workers, for docker-compose.yml. `docker build -t muster .`
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin muster && cp target/release/muster /muster

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /muster /usr/local/bin/muster
USER 65534
ENTRYPOINT ["muster"]
CMD ["all"]
