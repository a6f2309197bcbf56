# salve's container image, built from the release binary and nothing pulled:
#
#   cargo build --release
#   docker build -t salve .
#
# `cargo build --release` leaves beside the binary, in target/release/salve-libs/, the
# shared libraries it loads (the C library, libm, libgcc_s and the dynamic loader); the
# image is those and the binary, a user, the default config, an empty rules folder
# (/etc/salve/rules: mount yours) and the shipped rules as examples.
FROM scratch

# The binary and the libraries it loads; the tests build the image from their own
# (debug) binary with --build-arg BINARY=... --build-arg LIBS=...
ARG BINARY=target/release/salve
ARG LIBS=target/release/salve-libs

ARG VERSION=0.1.0
ARG REVISION=unknown
# Where the source is published: docker build --build-arg SOURCE=https://... .
ARG SOURCE=""
LABEL org.opencontainers.image.title="salve" \
      org.opencontainers.image.description="Declarative remediation rules engine driven by alert webhooks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY ${LIBS}/lib/ /lib/x86_64-linux-gnu/
COPY ${LIBS}/lib64/ /lib64/
COPY packaging/image/passwd packaging/image/group /etc/
COPY packaging/image/salve.toml /etc/salve/salve.toml
COPY packaging/image/rules/ /etc/salve/rules/
COPY rules/ /usr/share/salve/rules/
COPY --chown=65532:65532 packaging/image/state/ /var/lib/salve/
COPY ${BINARY} /usr/bin/salve

USER 65532:65532
WORKDIR /var/lib/salve
VOLUME ["/var/lib/salve"]
EXPOSE 9095
ENTRYPOINT ["/usr/bin/salve"]
CMD ["serve", "--config", "/etc/salve/salve.toml"]
