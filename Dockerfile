# mailprobe in a container: a slim Python base, the log exporter's hot path compiled by
# mypyc (setup.py, docs/performance.md), and a non-root user. compose.yaml builds it.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY monitor monitor
COPY exporters exporters
# MAILPROBE_MYPYC=1: setup.py compiles the per-line modules into C extensions.
RUN pip install --no-cache-dir "mypy>=1.10" "setuptools>=77" wheel \
    && MAILPROBE_MYPYC=1 pip wheel --no-cache-dir --no-build-isolation -w /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/mailprobe-*.whl && rm -rf /wheels \
    && useradd --system --uid 9974 --home-dir /var/lib/mailprobe --create-home mailprobe
USER mailprobe
WORKDIR /var/lib/mailprobe
EXPOSE 9974
# The config names state_dir /var/lib/mailprobe and listen 0.0.0.0:9974 (inside the
# container; compose publishes it on 127.0.0.1 only).
ENTRYPOINT ["mailprobe"]
CMD ["serve", "--config", "/etc/mailprobe/mailprobe.yml"]
