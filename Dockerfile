# The single Trimtab image: the operator (`trimtab operator run`) and the workers
# (`trimtab worker run`), as the chart's default image values expect.
#
#   docker build -t ghcr.io/trimtab/trimtab:0.1.0.dev0 .
#
# Stage 1 builds the wheel; stage 2 installs only that wheel (and its dependencies)
# into a slim Python, runs as a non-root user, and carries no compiler or build tools.
#
# BASE is the Python both stages start from. hack/build-image.sh (`make image`) builds this
# file without Docker or a registry, passing a local Debian-built stand-in for it.

ARG BASE=python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m build --wheel --outdir /wheels

FROM ${BASE}
# 65532: the chart's runAsUser; no shell login, no home files to write.
RUN groupadd --gid 65532 trimtab \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin trimtab
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl \
 && rm -rf /wheels \
 && python -m pip uninstall --yes pip setuptools wheel
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8080 8081 9090
ENTRYPOINT ["trimtab"]
CMD ["--help"]
