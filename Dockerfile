# jobcarbon workers, API and CLI (production images; the embedded default needs none of this).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends munge && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY schemas schemas
COPY consumers consumers
COPY warehouse warehouse
COPY jobcarbon jobcarbon
RUN pip install --no-cache-dir -c constraints.txt .
RUN useradd --system --uid 10001 jobcarbon
USER jobcarbon
ENTRYPOINT ["jobcarbon"]
