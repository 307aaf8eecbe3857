# changegate: one image for the worker and the demo fleet (`docker-compose.yml` runs both).
#   docker build -t changegate .
#   docker run --rm changegate --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Non-editable install of the package and its runtime dependencies only (no dev extras);
# the source tree is removed afterwards, the installed package is all the image keeps.
WORKDIR /tmp/changegate-src
COPY pyproject.toml README* ./
COPY src ./src
RUN pip install . \
    && cd / \
    && rm -rf /tmp/changegate-src

RUN groupadd --system --gid 10001 changegate \
    && useradd --system --uid 10001 --gid changegate --create-home \
        --home-dir /home/changegate --shell /usr/sbin/nologin changegate

USER 10001:10001
WORKDIR /home/changegate
ENV CHANGEGATE_DATA_DIR=/home/changegate/.changegate

# The demo fleet listens here when run as `fleet --host 0.0.0.0`.
EXPOSE 8710

ENTRYPOINT ["changegate"]
CMD ["--help"]
