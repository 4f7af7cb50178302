# Container image for imageset-operator.
#
# Build:
#   docker build -t imageset-operator .
# (podman build -t imageset-operator . works the same way.)
#
# The runtime image is distroless and runs as the unprivileged user 65532.
# The default command is `run` (the in-cluster controller); pass another
# subcommand to use the CLI instead, e.g. `docker run --rm imageset-operator crd`.

# Both base images can be swapped, e.g. for Red Hat's UBI where certification asks for it:
#   --build-arg BUILDER_IMAGE=registry.access.redhat.com/ubi9/ubi:latest (with Rust installed)
#   --build-arg RUNTIME_IMAGE=registry.access.redhat.com/ubi9/ubi-micro:latest
# Pin them by digest (IMAGE@sha256:...) for reproducible builds.
# Offline: `cargo vendor` into vendor/ beside the sources and add the source replacement it
# prints to .cargo/config.toml; COPY both before the first cargo build.
ARG BUILDER_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src

# Dependencies first: this layer is reused as long as Cargo.toml and Cargo.lock
# are unchanged. Placeholder sources let cargo resolve the lib and bin targets,
# and a placeholder per [[bench]] target lets it read the manifest (the benches
# are not part of the image).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for b in $(sed -n '/^\[\[bench\]\]/,/^name/ s/^name = "\(.*\)"/\1/p' Cargo.toml); do echo 'fn main() {}' > "benches/$b.rs"; done \
 && cargo build --release --locked --bin imageset-operator \
 && rm -rf src

# The real sources, and the release signing keys the binary embeds. Touching the
# entry points makes cargo rebuild the crate itself rather than trusting the
# placeholder build's timestamps.
# `--build-arg IMAGESET_OPERATOR_COMMIT=$(git rev-parse HEAD)` makes `version` and the
# build_info metric name the commit (there is no .git here); SOURCE_DATE_EPOCH fixes the date.
ARG IMAGESET_OPERATOR_COMMIT=unknown
ARG SOURCE_DATE_EPOCH
COPY build.rs ./
COPY src ./src
COPY config/release-keys ./config/release-keys
# /licenses: the project's LICENSE and those of the crates linked into the binary.
COPY LICENSE ./
COPY scripts/collect-licenses ./scripts/collect-licenses
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin imageset-operator \
 && cp target/release/imageset-operator /imageset-operator \
 && scripts/collect-licenses /src/licenses

FROM ${RUNTIME_IMAGE}
COPY --from=build /imageset-operator /usr/local/bin/imageset-operator
COPY --from=build /src/licenses /licenses
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/imageset-operator"]
CMD ["run"]
