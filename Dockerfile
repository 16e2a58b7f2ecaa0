# The image the Helm chart runs: `smsgw serve` (args: ["serve"]) or `smsgw migrate`.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home smsgw

ENV SMSGW_MIGRATIONS_DIR=/app/migrations \
    SMSGW_GRPC_ADDRESS=0.0.0.0:50051 \
    SMSGW_HTTP_ADDRESS=0.0.0.0:9464 \
    SMSGW_REST_ADDRESS=0.0.0.0:8080 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001
EXPOSE 50051 9464 8080
ENTRYPOINT ["smsgw"]
CMD ["serve"]
