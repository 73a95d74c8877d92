# One image for every Keyline service (keyline-kms, keyline-pks, keyline-injector,
# keyline-ecu-sim, keylinectl, ...); docker-compose.yml picks the binary per service.
#
#   docker build -t keyline:lab .          (docker-compose build does the same)
#
# No key material is ever baked in: configs and secrets are mounted at run time
# (see deploy/compose/README.md); .dockerignore keeps deploy/compose/secrets/ out of the context.

ARG DEBIAN_RELEASE=bookworm

# ---- build ----------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
# The build packages are exactly what scripts/deps installs for developers: run the script
# itself rather than keep a second list. Copied alone first so the layer stays cached until
# the package list changes.
COPY scripts/deps /tmp/keyline-deps
RUN bash /tmp/keyline-deps && rm -rf /var/lib/apt/lists/* /tmp/keyline-deps
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build
# Fail here, with a clear message, rather than ship an image without a service in it.
RUN for b in keyline-kms keyline-pks keyline-injector keyline-ecu-sim keylinectl; do \
      [ -x "/build/bin/$b" ] || { echo "Dockerfile: /build/bin/$b was not built" >&2; exit 1; }; \
    done

# ---- runtime --------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# yes: also install SoftHSMv2, for trying the PKCS#11 HSM backend in the lab.
ARG WITH_SOFTHSM=no
# Run-time halves of the scripts/deps libraries (Debian bookworm names); Boost.Test is only
# needed by the tests, which are not shipped.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libzmq5 libsodium23 librocksdb7.8 libssl3 libspdlog1.10 libfmt9 libtomlplusplus3 \
      libflatbuffers2 libp11-kit0 \
 && if [ "$WITH_SOFTHSM" = yes ]; then \
      apt-get install -y --no-install-recommends softhsm2; \
    fi \
 && rm -rf /var/lib/apt/lists/*
# /run/keyline is where keyline-entrypoint copies the secrets (docker-compose.yml mounts a tmpfs
# there). A new named volume takes /var/lib/keyline's owner and mode from here.
RUN groupadd --system --gid 10001 keyline \
 && useradd --system --uid 10001 --gid keyline --home-dir /var/lib/keyline \
      --no-create-home --shell /usr/sbin/nologin keyline \
 && install -d -o keyline -g keyline -m 0750 /var/lib/keyline \
 && install -d -m 0755 /etc/keyline /etc/keyline/public /run/keyline
COPY --from=build /build/bin/ /usr/local/bin/
COPY deploy/image/keyline-entrypoint /usr/local/bin/keyline-entrypoint
# Every shared library the binaries need must be in this stage, and the entrypoint's tools
# (util-linux and coreutils are Essential in Debian; checked rather than assumed).
RUN if ldd /usr/local/bin/keyline* | grep 'not found'; then \
      echo "Dockerfile: a run-time library is missing from the runtime stage" >&2; exit 1; \
    fi \
 && for t in setpriv mountpoint mktemp stat awk sed; do \
      command -v "$t" >/dev/null || { echo "Dockerfile: $t is missing" >&2; exit 1; }; \
    done
WORKDIR /var/lib/keyline
# No USER: the container starts as root only for keyline-entrypoint, which copies the secrets
# for the service user and then runs every command as keyline (uid 10001), without capabilities.
ENTRYPOINT ["keyline-entrypoint"]
# 7100 KMS plant link, 7101 KMS admin (keylinectl; the compose lab's setup service), 7200 PKS
# injector link, 7300 ECU simulator, 7400 injector EOL-tester API. The compose lab publishes none
# of them to the host.
EXPOSE 7100 7101 7200 7300 7400
CMD ["keylinectl", "--help"]
