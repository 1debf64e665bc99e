# Two targets:
#   docker build --target slim -t imagebot:slim .   vendor backends only, no torch (~200 MB);
#                                                    also the bot in front of GPU workers
#   docker build --target gpu  -t imagebot:gpu  .   local diffusers engine on CUDA; also a worker
#                                                    (python -m bot worker)
# compose.yaml runs the bot, Redis and a GPU worker together (see the README).
# Settings come from the environment (see .env.example); data lives in /data.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 IMAGEBOT_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY engine ./engine
COPY storage ./storage
COPY locales ./locales
RUN useradd --create-home --uid 1000 imagebot && mkdir /data && chown imagebot /data
VOLUME /data
EXPOSE 8080

FROM base AS slim
RUN pip install .
USER imagebot
ENV IMAGEBOT_DEFAULT_BACKEND=zhiqite IMAGEBOT_WEB_HOST=0.0.0.0
CMD ["python", "-m", "bot", "run"]

FROM base AS gpu
# A CUDA build of torch first; the [local] extra then keeps it.
ARG TORCH="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cu128"
RUN pip install "${TORCH}" --index-url "${TORCH_INDEX}" && pip install ".[local]"
USER imagebot
ENV IMAGEBOT_WEB_HOST=0.0.0.0 HF_HOME=/data/hf
CMD ["python", "-m", "bot", "run"]
