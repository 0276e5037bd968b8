# Starcite node image: one node per container, data under /data.
FROM python:3.11-slim
WORKDIR /app
COPY setup.cfg setup.py README.md ./
COPY starcite ./starcite
COPY conf ./conf
RUN pip install --no-cache-dir . && useradd --system --home /data starcite && mkdir -p /data && chown starcite /data
USER starcite
ENV STARCITE_DATA_DIR=/data STARCITE_HOST=0.0.0.0 PORT=4000
VOLUME /data
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:4000/health/live', timeout=2)" || exit 1
CMD ["starcite", "serve"]
