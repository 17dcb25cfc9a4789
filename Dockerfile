# bunker: build stage (native core + single compiled binary), test stage, small runtime image.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates nodejs npm gcc make libc6-dev protobuf-compiler git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN bash scripts/build.sh

# The test suite needs real runc and containerd and must run privileged:
#   docker build --target test -t bunker-test . && docker run --rm --privileged bunker-test
FROM build AS test
RUN apt-get update && apt-get install -y --no-install-recommends runc containerd busybox-static criu \
 && rm -rf /var/lib/apt/lists/*
CMD ["bash", ".ci/run"]

# What an edge host or appliance image needs: the one binary, its shim name, and runc.
FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends runc \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/dist/bunker /usr/local/bin/bunker
RUN ln -s bunker /usr/local/bin/containerd-shim-bunker-v1
ENTRYPOINT ["/usr/local/bin/bunker"]
