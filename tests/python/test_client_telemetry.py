"""KIP-714 client telemetry with a real librdkafka client.

A client-metrics subscription is created with IncrementalAlterConfigs on a CLIENT_METRICS
resource (kafka-python's admin client, as `kafka-client-metrics.sh` would); a
confluent-kafka producer (telemetry is on by default) then pushes its metrics. They must
reach a small OTLP/HTTP receiver run by the test (the user's collector), decoded with the
OpenTelemetry protobuf types and labelled with the client's id, and show on the broker's
/metrics. Every wait is bounded."""

import http.server
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Producer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from conftest import Broker

LATENCY = "org.apache.kafka.producer.node.request.latency.avg"


class Collector:
    """An OTLP/HTTP metrics receiver on 127.0.0.1: keeps every decoded request."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = metrics_service_pb2.ExportMetricsServiceRequest()
                req.ParseFromString(body)
                with outer.lock:
                    outer.requests.append((self.path, self.headers.get("Content-Type"), req))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def metrics(self, client_id):
        """(metric name, resource attributes) of everything pushed by `client_id`."""
        out = []
        with self.lock:
            for path, ctype, req in self.requests:
                assert path == "/v1/metrics"
                assert ctype == "application/x-protobuf"
                for rm in req.resource_metrics:
                    attrs = {a.key: a.value.string_value for a in rm.resource.attributes}
                    if attrs.get("client_id") != client_id:
                        continue
                    for sm in rm.scope_metrics:
                        out += [(m.name, attrs) for m in sm.metrics]
        return out

    def close(self):
        self.server.shutdown()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def scrape(broker):
    return urllib.request.urlopen(f"http://{broker.metrics_addr}/metrics", timeout=10).read().decode()


def subscribe(admin, name, configs):
    return admin.alter_configs(
        [ConfigResource(ConfigResourceType.CLIENT_METRICS, name, configs=configs)],
        raise_on_unknown=False, incremental=True)


def error_of(result, name):
    """The error (None when fine) of one resource in kafka-python's alter_configs result."""
    for per_type in result.values():
        if name in per_type:
            err = per_type[name]
            # kafka-python gives "OK" on success, "[Error N] Name: message" otherwise.
            return None if not err or str(err) == "OK" or "NoError" in str(err) else str(err)
    raise AssertionError(f"{name} not in {result}")


def test_librdkafka_pushes_metrics_to_the_collector_and_metrics_page(collector):
    broker = Broker({"client.telemetry.otlp.endpoint": collector.url})
    admin = KafkaAdminClient(bootstrap_servers=broker.addr, request_timeout_ms=10000)
    try:
        # Bad settings are refused, never stored.
        for bad in ({"interval.ms": "50"}, {"retention.ms": "1"}, {"match": "client_id=("}):
            err = error_of(subscribe(admin, "bad", bad), "bad")
            assert err is not None and "InvalidConfigurationError" in err, (bad, err)
        assert "bad" not in str(admin.list_config_resources(["CLIENT_METRICS"]))

        err = error_of(subscribe(admin, "producers", {
            "metrics": "org.apache.kafka.producer.",
            "interval.ms": "1000",
            "match": "client_id=telemetry-.*",
        }), "producers")
        assert err is None, err
        listed = admin.list_config_resources(["CLIENT_METRICS"])
        assert "producers" in str(listed), listed
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.CLIENT_METRICS, "producers")])
        assert "org.apache.kafka.producer." in str(described), described

        producer = Producer({"bootstrap.servers": broker.addr, "client.id": "telemetry-producer",
                             "enable.metrics.push": True})
        other = Producer({"bootstrap.servers": broker.addr, "client.id": "unsubscribed"})
        deadline = time.time() + 45
        pushed, page = [], ""
        while time.time() < deadline:
            for p in (producer, other):
                p.produce("telemetry-topic", b"x" * 100)
                p.poll(0)
            producer.flush(5)
            other.flush(5)
            pushed = collector.metrics("telemetry-producer")
            page = scrape(broker)
            if any(n == LATENCY for n, _ in pushed) and \
                    'client_id="telemetry-producer"' in page:
                break
            time.sleep(0.5)
        names = {n for n, _ in pushed}
        assert LATENCY in names, f"collector got {sorted(names)}\n{broker.log()[-3000:]}"
        # Only the subscribed prefix, with the broker's labels.
        assert all(n.startswith("org.apache.kafka.producer.") for n in names), names
        attrs = next(a for n, a in pushed if n == LATENCY)
        assert attrs["principal"] == "User:ANONYMOUS"
        assert attrs["client_software_name"] == "confluent-kafka-python", attrs
        assert len(attrs["client_instance_id"]) == 36
        # The same values on /metrics, in Prometheus form.
        lines = [l for l in page.splitlines()
                 if l.startswith("org_apache_kafka_producer_node_request_latency_avg{")
                 and 'client_id="telemetry-producer"' in l]
        assert lines, page[-3000:]
        assert "# TYPE org_apache_kafka_producer_node_request_latency_avg gauge" in page
        # The unmatched client is asked for nothing and pushes nothing.
        assert collector.metrics("unsubscribed") == []
        assert 'client_id="unsubscribed"' not in page
        assert 'strata_client_telemetry_pushes_total{outcome="ok"' in page
        assert 'strata_client_telemetry_forwarded_total{result="sent"' in page

        # Deleting the subscription stops the pushes: the client learns it through
        # UNKNOWN_SUBSCRIPTION_ID and an empty subscription.
        err = error_of(subscribe(admin, "producers", {
            "metrics": ("DELETE", None), "interval.ms": ("DELETE", None),
            "match": ("DELETE", None)}), "producers")
        assert err is None, err
        assert "producers" not in str(admin.list_config_resources(["CLIENT_METRICS"]))
        producer.flush(5)
        other.flush(5)
    finally:
        admin.close()
        broker.close()


def test_without_a_collector_metrics_show_on_the_metrics_page():
    broker = Broker({"client.telemetry.otlp.endpoint": "none"})
    admin = KafkaAdminClient(bootstrap_servers=broker.addr, request_timeout_ms=10000)
    try:
        err = error_of(subscribe(admin, "all", {"metrics": "*", "interval.ms": "500"}), "all")
        assert err is None, err
        producer = Producer({"bootstrap.servers": broker.addr, "client.id": "solo"})
        deadline = time.time() + 45
        page = ""
        while time.time() < deadline:
            producer.produce("solo-topic", b"y")
            producer.flush(5)
            page = scrape(broker)
            if 'client_id="solo"' in page:
                break
            time.sleep(0.5)
        assert 'client_id="solo"' in page, broker.log()[-3000:]
        assert "strata_client_telemetry_forwarded_total" not in page
    finally:
        admin.close()
        broker.close()
