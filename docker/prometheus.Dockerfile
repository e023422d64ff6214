# SPDX-License-Identifier: Apache-2.0
# Prometheus for docker/compose.yaml: Debian 12's own `prometheus` package
# (the version pigeon's ops files are checked with: promtool 2.42 in
# tests/integration/test_ops_files.py), nothing else.
#
#   docker build -f docker/prometheus.Dockerfile -t pigeon-prometheus docker
#
# The configuration is not baked in: compose mounts conf/prometheus/ at
# /etc/pigeon/prometheus/ and this image reads prometheus-compose.yml from
# there (which loads alerts.yml beside it). Run alone, mount the same way:
#   docker run -v "$PWD/conf/prometheus:/etc/pigeon/prometheus:ro" -p 127.0.0.1:9090:9090 pigeon-prometheus
FROM debian:12

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/*

# The package's own user; /var/lib/prometheus is its home and the TSDB.
USER prometheus
VOLUME /var/lib/prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/pigeon/prometheus/prometheus-compose.yml", \
     "--storage.tsdb.path=/var/lib/prometheus/metrics2", \
     "--web.listen-address=0.0.0.0:9090"]
