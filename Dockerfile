# moeserve container image. Build stage uses the same scripts as the README and CI.
#   docker build -t moeserve .
#   docker build --build-arg CUDA_ARCHS="90a;100a" -t moeserve .
# (Deployment manifests and the serving entrypoint arrive with the gRPC front end; see issues.)

ARG CUDA_VERSION=13.0.0
ARG UBUNTU=ubuntu24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
ARG CUDA_ARCHS=90a
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh
COPY . .
RUN MOESERVE_SKIP_DEPS=1 BUILD_TYPE=Release scripts/build.sh \
      -DMOESERVE_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS}" \
 && mkdir -p /out/lib \
 && cp -r build/bin /out/bin \
 && ldd build/bin/* | awk '/=> \// {print $3}' | sort -u \
    | grep -v -E 'libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|ld-linux|libcuda\.so|libcudart|libcublas' \
    | xargs -r -I{} cp -L {} /out/lib/

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU} AS runtime
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libcublas-13-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home moeserve
COPY --from=build /out/bin /opt/moeserve/bin
COPY --from=build /out/lib /opt/moeserve/lib
ENV LD_LIBRARY_PATH=/opt/moeserve/lib PATH=/opt/moeserve/bin:$PATH
USER moeserve
VOLUME ["/models"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["moeserve"]
CMD ["generate", "--model", "/models", "--device", "auto"]
