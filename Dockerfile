FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CERTGATE_HOME=/var/lib/certgate \
    CERTGATE_SERVER__HOST=0.0.0.0

RUN useradd --system --uid 10001 --home-dir /var/lib/certgate --create-home certgate

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY protocols ./protocols
COPY store ./store
COPY conf ./conf
RUN pip install --no-cache-dir .

USER certgate
VOLUME ["/var/lib/certgate"]
EXPOSE 8080 8443
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
ENTRYPOINT ["certgate"]
CMD ["serve"]
