# syntax=docker/dockerfile:1
# One image for every Python process of the Procfile (web, worker, beat, flower)
# and for the one-shot step that renders nginx's config; the process is the
# command: `docker run IMAGE worker`. nginx itself runs from the official nginx
# image (see docker-compose.yml).
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv with the pinned runtime dependencies ----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
# Only requirements.txt first: code changes do not invalidate this layer.
# Every pinned dependency ships a wheel for CPython 3.11, so no compiler is
# needed; if one ever does, add build-essential here, never in the final stage.
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt

# ---- runtime: the venv and the application code, no build tools -------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    RECORDINGS_DIR=/data/recordings \
    RUNTIME_DIR=/var/lib/recording-cache/run

# A fixed uid/gid so files on the shared volume have the same owner in every
# container. The folders exist in the image, owned by `app`, because Docker
# copies a folder's owner and mode into an empty named volume mounted on it:
# that is what makes `recordings_data` and the nginx runtime volume writable
# for a non-root process.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0755 \
        /data/recordings \
        /var/lib/recording-cache/run \
        /var/lib/recording-cache/nginx

COPY --from=build /opt/venv /opt/venv

# Code is owned by root: the app user can read it, not change it.
WORKDIR /app
# The packages are imported from /app, the working folder (`python -m`).
COPY Procfile pyproject.toml ./
COPY worker/ worker/
COPY web/ web/
COPY nginx/ nginx/
COPY simulator/ simulator/
COPY stack/ stack/

USER 10001:10001
ENTRYPOINT ["python", "-m", "stack.container"]
CMD ["web"]
