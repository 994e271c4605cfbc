# Multi-stage image: build the wheel with the Rust toolchain, install it in a slim Python image.
# Untested here (no Docker engine on the development machines); kept plain on purpose.

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build && /opt/build/bin/pip install "maturin>=1.7,<2"
WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY crates crates
COPY python python
RUN /opt/build/bin/maturin build --release --out /wheels

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV ZENITH_LOG_LEVEL=info
ENTRYPOINT ["zenith"]
CMD ["info"]
