"""Prometheus metrics of one application instance (its own registry: no globals).

Counters and histograms are updated as things happen; gauges that mirror the database (log
size, anchors by state) are read at scrape time by collectors the features register. A
collector that cannot read now (the database is out of reach) is left out of that scrape and
counted in ``ler_anchor_metric_sources_failed``: the scrape itself still answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from anchor.errors import AnchorError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Gauges(Collector):
    def __init__(self) -> None:
        self.sources: list[Callable[[], Iterable[Metric]]] = []

    def collect(self) -> Iterable[Metric]:
        failed = 0
        for source in self.sources:
            try:
                metrics = list(source())
            except AnchorError:  # the database is out of reach: /healthz says why
                failed += 1
                continue
            yield from metrics
        yield GaugeMetricFamily(
            "ler_anchor_metric_sources_failed",
            "Gauge sources that could not be read for this scrape (e.g. the database is down)",
            value=failed,
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "ler_anchor_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ler_anchor_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.entries_appended = Counter(
            "ler_anchor_entries_appended", "New log entries committed", registry=self.registry
        )
        self.chain_errors = Counter(
            "ler_anchor_chain_errors", "Chain/RPC errors seen", ["kind"], registry=self.registry
        )
        self._gauges = _Gauges()
        self.registry.register(self._gauges)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def add_gauge_source(self, source: Callable[[], Iterable[Metric]]) -> None:
        self._gauges.sources.append(source)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
