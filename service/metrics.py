"""Prometheus metrics, one registry per app so tests can build many apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sent = Counter("letterbox_deliveries_sent", "Copies accepted by the SMTP server.", registry=self.registry)
        self.failed = Counter(
            "letterbox_deliveries_failed", "Copies that failed for good.", registry=self.registry
        )
        self.retried = Counter(
            "letterbox_deliveries_retried", "Temporary failures scheduled for another try.", registry=self.registry
        )
        self.skipped = Counter(
            "letterbox_deliveries_skipped", "Copies dropped before sending (unsubscribed, suppressed).",
            registry=self.registry,
        )
        self.send_latency = Histogram(
            "letterbox_send_latency_seconds", "Time for the SMTP server to accept one copy.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "letterbox_queue_depth", "Copies waiting, by state.", ["state"], registry=self.registry
        )
        self.system_mails = Counter(
            "letterbox_system_mails_sent", "Confirmation and other system mails sent.", registry=self.registry
        )
        self.bounces = Counter(
            "letterbox_bounce_events", "Bounce and complaint events acted on.", ["kind"], registry=self.registry
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
