# syntax=docker/dockerfile:1
# moeserve container images. How to build, run and deploy them: deploy/README.md.
#
#   docker build -t moeserve .                                        # CUDA image (target `runtime`)
#   docker build --build-arg CUDA_ARCHS="90a;100a" -t moeserve .      # GPU architectures to compile for
#   docker build --target runtime-cpu -t moeserve:cpu .               # CPU-only image, no CUDA anywhere
#   docker run --rm --gpus all -p 50051:50051 -p 9400:9400 moeserve   # serves the embedded default model
#   docker run --rm --gpus all -v /srv/models/my-model:/models:ro -p 50051:50051 -p 9400:9400 moeserve
#
# The build stages run nothing but scripts/install-deps.sh and scripts/build.sh (the scripts CI runs:
# .ci/run -> scripts/test.sh -> scripts/build.sh -> scripts/install-deps.sh) and
# deploy/docker/collect-runtime.sh (which CI runs in tests/deploy), so a step that breaks here breaks
# CI first. tests/deploy/check_deploy.py enforces this and checks every flag below against
# `moeserve serve --help`.
#
# The runtime images hold the binaries, the shared libraries the base image lacks, and the default
# model (models/default) at /models, read-only and owned by root; a volume mounted at /models
# replaces it. They run `moeserve serve` as uid 10001 (not root).

ARG CUDA_VERSION=13.0.0
ARG UBUNTU_VERSION=24.04

# ---- CPU-only build ---------------------------------------------------------------------------------
FROM ubuntu:${UBUNTU_VERSION} AS build-cpu
ARG BUILD_TYPE=Release
ARG JOBS=
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh
COPY . .
RUN --mount=type=cache,target=/root/.cache/ccache \
    MOESERVE_SKIP_DEPS=1 BUILD_DIR=/src/build BUILD_TYPE="${BUILD_TYPE}" JOBS="${JOBS}" \
    scripts/build.sh -DMOESERVE_CUDA=OFF -DMOESERVE_BUILD_TESTS=OFF
RUN deploy/docker/collect-runtime.sh /src/build/bin /out

# ---- CPU-only runtime: docker build --target runtime-cpu ---------------------------------------------
FROM ubuntu:${UBUNTU_VERSION} AS runtime-cpu
RUN groupadd --system --gid 10001 moeserve \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin moeserve
COPY --from=build-cpu /out/bin/ /opt/moeserve/bin/
COPY --from=build-cpu /out/lib/ /opt/moeserve/lib/
# Fails the image build when a library is missing here; proves the binary loads.
RUN echo /opt/moeserve/lib > /etc/ld.so.conf.d/moeserve.conf && ldconfig \
 && if ldd /opt/moeserve/bin/* | grep -F "not found"; then exit 1; fi \
 && /opt/moeserve/bin/moeserve serve --help > /dev/null
COPY models/default/ /models/
ENV PATH=/opt/moeserve/bin:${PATH}
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 8000 9400
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=6s --start-period=600s --retries=3 \
  CMD ["moeserve-cli", "--addr", "127.0.0.1:50051", "--health", "--timeout", "5"]
ENTRYPOINT ["moeserve", "serve"]
CMD ["--model", "/models", "--device", "cpu", "--host", "0.0.0.0", "--port", "50051", "--http-port", "8000", "--metrics-port", "9400", "--shutdown-timeout", "30"]

# ---- CUDA build -----------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build
# Semicolon-separated CMAKE_CUDA_ARCHITECTURES, e.g. "90a" (H100/H200), "90a;100a" (+ B200).
ARG CUDA_ARCHS=90a
ARG BUILD_TYPE=Release
ARG JOBS=
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh
COPY . .
RUN --mount=type=cache,target=/root/.cache/ccache \
    MOESERVE_SKIP_DEPS=1 BUILD_DIR=/src/build BUILD_TYPE="${BUILD_TYPE}" JOBS="${JOBS}" \
    scripts/build.sh -DMOESERVE_CUDA=ON -DMOESERVE_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS}"
RUN deploy/docker/collect-runtime.sh /src/build/bin /out

# ---- CUDA runtime (the default target) ---------------------------------------------------------------
# The CUDA runtime image provides libcudart and libcublas/libcublasLt; the driver (libcuda) comes from
# the host through the NVIDIA container toolkit (`docker run --gpus`, Kubernetes' device plugin).
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS runtime
RUN groupadd --system --gid 10001 moeserve \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin moeserve
COPY --from=build /out/bin/ /opt/moeserve/bin/
COPY --from=build /out/lib/ /opt/moeserve/lib/
RUN echo /opt/moeserve/lib > /etc/ld.so.conf.d/moeserve.conf && ldconfig \
 && if ldd /opt/moeserve/bin/* | grep -F "not found"; then exit 1; fi \
 && /opt/moeserve/bin/moeserve serve --help > /dev/null
COPY models/default/ /models/
ENV PATH=/opt/moeserve/bin:${PATH}
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 8000 9400
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=6s --start-period=600s --retries=3 \
  CMD ["moeserve-cli", "--addr", "127.0.0.1:50051", "--health", "--timeout", "5"]
ENTRYPOINT ["moeserve", "serve"]
CMD ["--model", "/models", "--device", "auto", "--host", "0.0.0.0", "--port", "50051", "--http-port", "8000", "--metrics-port", "9400", "--shutdown-timeout", "30"]
