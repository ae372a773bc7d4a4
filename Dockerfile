# The HAL9 server's image: FROM scratch (no base image has to be pulled),
# the static binaries hal9 and hal9-lab (CGO_ENABLED=0; SQLite is pure Go),
# a non-root user, CA certificates. The build context is bin/image/, which
# `make image` stages and builds through the engine API, tagged
# hal9-lab/hal9:$(VERSION). By hand, after `make image-context`:
#   docker build -f Dockerfile -t hal9-lab/hal9:dev bin/image
# The lab's --server container builds it on a context whose bin/ holds
# the server alone.
FROM scratch
COPY etc/ /etc/
COPY bin/ /usr/local/bin/
COPY tmp /tmp
COPY --chown=65532:65532 data /data
USER 65532:65532
WORKDIR /data
# Listen on every address of the container; SQLite (the default store) in /data.
ENV HAL9_ADDR=0.0.0.0:8080 HAL9_ADMIN_ADDR=0.0.0.0:9091 HAL9_DATA_DIR=/data
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/hal9"]
CMD ["serve"]
