"""Operations: structured logs, Prometheus metrics, the embedded Redis server."""
