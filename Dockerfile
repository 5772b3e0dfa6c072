# flashsale: the checkout server and the load driver in one image, FROM scratch: nothing but the
# two static binaries (both in one image so every container can run `/driver probe` as its
# healthcheck; a scratch image has no shell or curl).
#
# Built from source, with only Docker needed:
#     docker compose up -d            # or: docker-compose up -d; or: docker build -t flashsale:local .
# A Rust builder stage compiles static binaries with scripts/build-static.sh (static glibc on the
# builder's own Linux GNU target, x86_64 or aarch64), then the final stage copies them into an
# empty image. BUILDER_IMAGE names the builder: the official Rust image by default; any Debian-like
# image with cargo, rustc, gcc and libc6-dev on PATH will do (CI makes one without pulling:
# .ci/builder-image.sh). The dependencies are compiled in a layer of their own, keyed on the
# manifests and Cargo.lock only (scripts/cargo-recipe.sh), so a source edit rebuilds only the
# workspace's own crates.
#
# With Rust on the host, Dockerfile.prebuilt is the faster path: it packs the binaries that
# scripts/build-static.sh built into dist/ (docs/compose.md).
#
# Plain Dockerfile syntax, no BuildKit-only features: docker-compose v1 builds with the classic
# builder.
ARG BUILDER_IMAGE=rust:1-bookworm

# The dependency recipe: manifests, Cargo.lock and stub sources. Re-run on every change, but its
# output is identical unless a manifest or the lock file changed.
FROM ${BUILDER_IMAGE} AS recipe
WORKDIR /src
COPY . .
RUN scripts/cargo-recipe.sh /recipe
# Names this stage's leftovers (the classic builder keeps each stage as an untagged image) so that
# a build can find and remove them: tests/compose.sh passes --build-arg FLASHSALE_BUILD=<its id>.
# Declared last, so its value never costs a cache miss.
ARG FLASHSALE_BUILD=
LABEL org.flashsale.build=${FLASHSALE_BUILD}

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
# Dependencies only (the stubs' binaries go into dist/ and are replaced below).
COPY --from=recipe /recipe/ ./
RUN scripts/build-static.sh >/dev/null
# The workspace itself. COPY keeps the sources' modification times, which may be older than the
# stubs' build: touch them so cargo sees every workspace crate as changed.
COPY . .
RUN find . -path ./target -prune -o -type f -exec touch {} + && scripts/build-static.sh
ARG FLASHSALE_BUILD=
LABEL org.flashsale.build=${FLASHSALE_BUILD}

FROM scratch
COPY --from=builder /src/dist/built-by-scripts-build-static.sh /etc/flashsale-build
COPY --from=builder /src/dist/server /src/dist/driver /
# No /etc/passwd needed: nothing looks users up. Run as an unprivileged numeric user.
USER 10001:10001
# Container logs go to a log driver, not a terminal: no ANSI colours (tracing honours NO_COLOR).
ENV NO_COLOR=1
EXPOSE 50051 7000 8089
ENTRYPOINT ["/server"]
