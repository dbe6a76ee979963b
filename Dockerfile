# syntax=docker/dockerfile:1
# The qoslake image: the static binary `make build` produces, on a distroless
# base, running as a non-root user. Build from the repository root:
#   docker build -t qoslake .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same target CI and developers use, so the image holds the same binary.
RUN make build BIN=/out/qoslake && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/qoslake /qoslake
# Local state (SQLite catalog, local warehouse) when no AWS catalog is used.
COPY --from=build --chown=65532:65532 /out/state /var/lib/qoslake
ENV QOSLAKE_STATE_DIR=/var/lib/qoslake
USER 65532:65532
EXPOSE 8080 9464
ENTRYPOINT ["/qoslake"]
CMD ["run", "--http-addr", "0.0.0.0:9464"]
