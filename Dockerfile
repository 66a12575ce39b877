# The strata binary in a small image. Used by localstack/docker-compose.yml and
# minio/docker-compose.yml; build with `docker build -t strata .`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin strata

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/strata strata \
    && mkdir -p /var/lib/strata \
    && chown strata:strata /var/lib/strata
COPY --from=build /src/target/release/strata /usr/local/bin/strata
USER strata
VOLUME /var/lib/strata
EXPOSE 9092 9093 9464
ENTRYPOINT ["strata"]
CMD ["serve", "--set", "listeners=PLAINTEXT://0.0.0.0:9092", "--set", "log.dirs=/var/lib/strata"]
