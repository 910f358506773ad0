# The service as a container image: `docker build -t scoreboard .`
# Runs `scoreboard serve` on 0.0.0.0:8000 as an unprivileged user. Without SCOREBOARD_* settings
# it is the embedded default (SQLite under /data, which should be a volume); compose.yaml runs it
# scaled, on PostgreSQL + Redis behind nginx (docs/SCALING.md, "Containers").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SCOREBOARD_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
RUN pip install -c constraints.txt . \
 && useradd --system --uid 10001 --home-dir /data scoreboard \
 && mkdir -p /data && chown scoreboard /data

USER scoreboard
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"
# Exec form: the server is PID 1's only child-free process and gets SIGTERM itself.
CMD ["scoreboard", "serve", "--host", "0.0.0.0", "--port", "8000"]
