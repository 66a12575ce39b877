"""TLS and SASL with real clients (confluent-kafka/librdkafka and kafka-python): SSL with
and without a client certificate; SASL_SSL with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and
OAUTHBEARER (a test JWKS, tokens signed here, the JWKS from a file and from an https URL);
SASL_PLAINTEXT with SCRAM; KIP-368 re-authentication. Negative cases each get a clear
failure while a well-behaved client on the same broker keeps producing: a wrong password,
an expired or forged token, an untrusted client certificate, a plaintext client on a TLS
port, 1,000 connections that never authenticate. SCRAM users are made with `strata user`
and survive a restart. Everything binds 127.0.0.1; keys are made fresh by the test."""

import http.server
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from kafka import KafkaConsumer, KafkaProducer

from conftest import BINARY, Broker
from security_helpers import Pki

try:
    from kafka.net.sasl.oauth import AbstractTokenProvider
except ImportError:  # kafka-python < 3
    from kafka.sasl.oauth import AbstractTokenProvider

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_admin="admin-secret" user_alice="alice-secret";')
ISSUER, AUDIENCE = "https://issuer.test", "strata"


def security_settings(pki, jwks_url):
    return {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,MTLS://127.0.0.1:0,"
                     "SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,"
                                          "SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
        # An encrypted key, opened with ssl.key.password.
        "ssl.keystore.location": pki.broker_encrypted,
        "ssl.key.password": "key-pass",
        "ssl.truststore.location": pki.ca,
        "listener.name.ssl.ssl.client.auth": "requested",
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
        "sasl.oauthbearer.jwks.endpoint.url": jwks_url,
        "sasl.oauthbearer.expected.issuer": ISSUER,
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "connection.authentication.timeout.ms": 3000,
        "group.initial.rebalance.delay.ms": 0,
        "offsets.topic.num.partitions": 4,
    }


def strata_user(addr, *args, command_config=None):
    cmd = [str(BINARY), "user", "-b", addr]
    if command_config:
        cmd += ["--command-config", command_config]
    out = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(pki):
    b = Broker(security_settings(pki, pki.jwks))
    # SCRAM users, created through the SASL_SSL listener as the PLAIN admin, with a
    # Kafka client properties file: the CLI's own TLS and SASL are exercised too.
    props = pki.dir / "admin.properties"
    props.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
        '    username="admin" password="admin-secret";\n'
        f"ssl.truststore.location={pki.ca}\n")
    b.admin_properties = str(props)
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        strata_user(b.listeners["SASL_SSL"], "scram", "set", "bob", "-m", mech,
                    "--password", "bob-secret", command_config=str(props))
    yield b
    b.close()


# --- client configurations ------------------------------------------------------------

def cf(broker, pki, kind, user="bob", password="bob-secret", token=None):
    """confluent-kafka settings for one listener and mechanism."""
    listener, mech = kind
    c = {"bootstrap.servers": broker.listeners[listener], "security.protocol": listener.replace("MTLS", "SSL")}
    if c["security.protocol"].endswith("SSL"):
        c["ssl.ca.location"] = pki.ca
    if listener == "MTLS" or mech == "cert":
        c.update({"ssl.certificate.location": pki.client_cert, "ssl.key.location": pki.client_key})
    if mech in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        c.update({"sasl.mechanism": mech, "sasl.username": user, "sasl.password": password})
    if mech == "OAUTHBEARER":
        tok = token or pki.token("carol", issuer=ISSUER, audience=AUDIENCE)
        c.update({"sasl.mechanism": "OAUTHBEARER", "oauth_cb": lambda _: (tok, time.time() + 300)})
    return c


class Tokens(AbstractTokenProvider):
    def __init__(self, token):
        super().__init__()
        self._token = token

    def token(self):
        return self._token


def kp(broker, pki, kind, user="bob", password="bob-secret"):
    """kafka-python settings for one listener and mechanism."""
    listener, mech = kind
    c = {"bootstrap_servers": broker.listeners[listener],
         "security_protocol": listener.replace("MTLS", "SSL")}
    if c["security_protocol"].endswith("SSL"):
        c["ssl_cafile"] = pki.ca
    if listener == "MTLS" or mech == "cert":
        c.update({"ssl_certfile": pki.client_cert, "ssl_keyfile": pki.client_key})
    if mech in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        c.update({"sasl_mechanism": mech, "sasl_plain_username": user, "sasl_plain_password": password})
    if mech == "OAUTHBEARER":
        c.update({"sasl_mechanism": "OAUTHBEARER",
                  "sasl_oauth_token_provider": Tokens(pki.token("carol", issuer=ISSUER, audience=AUDIENCE))})
    return c


def roundtrip_confluent(conf, n=20):
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    p = Producer(conf)
    for i in range(n):
        p.produce(topic, f"v{i}".encode())
    assert p.flush(30) == 0
    c = Consumer({**conf, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.time() + 30
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    assert got == [f"v{i}" for i in range(n)]


def roundtrip_kafka_python(conf, n=20):
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    p = KafkaProducer(**conf)
    for i in range(n):
        p.send(topic, f"v{i}".encode())
    p.flush(30)
    p.close()
    c = KafkaConsumer(topic, group_id=topic, auto_offset_reset="earliest", consumer_timeout_ms=15000, **conf)
    got = []
    for m in c:
        got.append(m.value.decode())
        if len(got) == n:
            break
    c.close()
    assert got == [f"v{i}" for i in range(n)]


COMBINATIONS = [
    ("SSL", None),                  # no client certificate (ssl.client.auth=requested)
    ("SSL", "cert"),                # with one
    ("MTLS", "cert"),               # required
    ("SASL_SSL", "PLAIN"),
    ("SASL_SSL", "SCRAM-SHA-256"),
    ("SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "OAUTHBEARER"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
]


@pytest.mark.parametrize("kind", COMBINATIONS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_confluent_kafka_produces_and_consumes(broker, pki, kind):
    user = "alice" if kind[1] == "PLAIN" else "bob"
    password = "alice-secret" if kind[1] == "PLAIN" else "bob-secret"
    roundtrip_confluent(cf(broker, pki, kind, user, password))


@pytest.mark.parametrize("kind", COMBINATIONS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_kafka_python_produces_and_consumes(broker, pki, kind):
    user = "alice" if kind[1] == "PLAIN" else "bob"
    password = "alice-secret" if kind[1] == "PLAIN" else "bob-secret"
    roundtrip_kafka_python(kp(broker, pki, kind, user, password))


# --- negative cases, with a well-behaved client producing throughout --------------------

class WellBehaved:
    """Produces one record every 20 ms over SASL_SSL/SCRAM while a test misbehaves; on
    exit every record must be delivered, none later than `max_latency` seconds."""

    def __init__(self, broker, pki, max_latency=5.0):
        self.p = Producer({**cf(broker, pki, ("SASL_SSL", "SCRAM-SHA-512")), "linger.ms": 0})
        self.topic = f"steady-{uuid.uuid4().hex[:8]}"
        self.max_latency, self.sent, self.latencies, self.errors = max_latency, 0, [], []
        self.stop = threading.Event()

    def _run(self):
        while not self.stop.is_set():
            t0 = time.time()
            self.p.produce(self.topic, b"x", on_delivery=lambda e, m, t0=t0: (
                self.errors.append(e) if e else self.latencies.append(time.time() - t0)))
            self.sent += 1
            self.p.poll(0.02)

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert self.p.flush(30) == 0
        assert not self.errors, self.errors[:3]
        assert self.sent > 10 and len(self.latencies) == self.sent
        assert max(self.latencies) < self.max_latency, max(self.latencies)


def confluent_fails(conf, want):
    """An admin request fails, and the client's error callback says why."""
    errors = []
    p = Producer({**conf, "error_cb": lambda e: errors.append(str(e)), "socket.timeout.ms": 5000})
    with pytest.raises(KafkaException):
        p.list_topics(timeout=5)
    # Error callbacks are served by poll().
    deadline = time.time() + 5
    while time.time() < deadline and not any(w in e for e in errors for w in want):
        p.poll(0.2)
    assert any(w in e for e in errors for w in want), errors


def test_wrong_password(broker, pki, caplog):
    with WellBehaved(broker, pki):
        confluent_fails(cf(broker, pki, ("SASL_SSL", "SCRAM-SHA-256"), password="wrong"),
                        ["Authentication failed"])
        confluent_fails(cf(broker, pki, ("SASL_SSL", "PLAIN"), user="alice", password="wrong"),
                        ["Authentication failed"])
        with pytest.raises(Exception):
            KafkaProducer(**kp(broker, pki, ("SASL_PLAINTEXT", "SCRAM-SHA-256"), password="wrong"),
                          max_block_ms=5000)
        assert any("Authentication failed: invalid credentials" in r.getMessage() for r in caplog.records)


def test_expired_or_forged_token(broker, pki):
    with WellBehaved(broker, pki):
        expired = pki.token("carol", lifetime=-120, issuer=ISSUER, audience=AUDIENCE)
        confluent_fails(cf(broker, pki, ("SASL_SSL", "OAUTHBEARER"), token=expired), ["expired"])
        forged = pki.token("carol", issuer=ISSUER, audience=AUDIENCE, key=pki.other_key)
        confluent_fails(cf(broker, pki, ("SASL_SSL", "OAUTHBEARER"), token=forged), ["invalid token"])
        wrong_aud = pki.token("carol", issuer=ISSUER, audience="someone-else")
        confluent_fails(cf(broker, pki, ("SASL_SSL", "OAUTHBEARER"), token=wrong_aud), ["audience"])


def test_untrusted_client_certificate(broker, pki):
    with WellBehaved(broker, pki):
        rogue = {**cf(broker, pki, ("MTLS", "cert")),
                 "ssl.certificate.location": pki.rogue_cert, "ssl.key.location": pki.rogue_key}
        confluent_fails(rogue, ["SSL", "ssl", "certificate"])
        no_cert = {k: v for k, v in cf(broker, pki, ("MTLS", "cert")).items()
                   if not k.startswith("ssl.certificate") and not k.startswith("ssl.key")}
        confluent_fails(no_cert, ["SSL", "ssl", "certificate", "Disconnected"])


def test_plaintext_client_on_a_tls_port(broker, pki):
    with WellBehaved(broker, pki):
        conf = {"bootstrap.servers": broker.listeners["SASL_SSL"], "security.protocol": "PLAINTEXT"}
        confluent_fails(conf, ["Disconnected", "disconnect", "brokers are down"])
        with pytest.raises(Exception):
            KafkaProducer(bootstrap_servers=broker.listeners["SSL"], max_block_ms=4000,
                          request_timeout_ms=3000, api_version_auto_timeout_ms=3000)


def test_a_thousand_unauthenticated_connections_are_closed(broker, pki):
    """1,000 connections that never authenticate (500 never start TLS, 500 never start
    SASL) do not stop a well-behaved client, and the broker closes all of them once
    connection.authentication.timeout.ms (3 s here) has passed."""
    socks = []
    try:
        with WellBehaved(broker, pki):
            for i in range(1000):
                host, port = broker.listeners["SASL_SSL" if i % 2 else "SASL_PLAINTEXT"].rsplit(":", 1)
                socks.append(socket.create_connection((host, int(port)), timeout=5))
            deadline = time.time() + 15
            closed = 0
            for s in socks:
                s.settimeout(max(0.1, deadline - time.time()))
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except (ConnectionResetError, BrokenPipeError):
                    closed += 1
                except socket.timeout:
                    pass
            assert closed == 1000, f"only {closed} of 1000 idle connections were closed by the broker"
    finally:
        for s in socks:
            s.close()


# --- JWKS over https, re-authentication, users across a restart -------------------------

@pytest.fixture
def jwks_https(pki):
    """An HTTPS server on 127.0.0.1 serving the JWKS with the test CA's certificate."""
    body = open(pki.jwks, "rb").read()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.broker)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://localhost:{server.server_address[1]}/jwks.json"
    server.shutdown()


def test_oauthbearer_with_the_jwks_from_an_https_url(pki, jwks_https):
    settings = {
        "listeners": "SASL_SSL://127.0.0.1:0",
        "ssl.keystore.location": pki.broker,
        "sasl.enabled.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url": jwks_https,
        "sasl.oauthbearer.expected.audience": AUDIENCE,
    }
    # The broker trusts the test CA for the JWKS server through SSL_CERT_FILE.
    b = Broker(settings, env={"SSL_CERT_FILE": pki.ca})
    try:
        roundtrip_confluent(cf(b, pki, ("SASL_SSL", "OAUTHBEARER")), n=5)
    finally:
        b.close()


def test_reauthentication_keeps_long_connections_alive(pki):
    """connections.max.reauth.ms=2000: clients re-authenticate (KIP-368) and keep
    producing on the same connections for longer than one session."""
    b = Broker({"listeners": "SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
                "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "sasl.enabled.mechanisms": "SCRAM-SHA-256",
                "connections.max.reauth.ms": 2000})
    try:
        strata_user(b.listeners["PLAINTEXT"], "scram", "set", "bob", "--password", "bob-secret")
        p = Producer({**cf(b, pki, ("SASL_PLAINTEXT", "SCRAM-SHA-256")), "linger.ms": 0})
        topic = f"reauth-{uuid.uuid4().hex[:8]}"
        failures, end = [], time.time() + 6
        while time.time() < end:
            p.produce(topic, b"x", on_delivery=lambda e, m: e and failures.append(e))
            p.poll(0.05)
        assert p.flush(30) == 0
        assert not failures, failures[:3]
        kafka_python = KafkaProducer(**kp(b, pki, ("SASL_PLAINTEXT", "SCRAM-SHA-256")))
        for _ in range(30):
            kafka_python.send(topic, b"y").get(timeout=10)
            time.sleep(0.2)
        kafka_python.close()
    finally:
        b.close()


def test_scram_users_survive_a_restart(pki):
    b = Broker({"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"})
    try:
        plain = b.listeners["PLAINTEXT"]
        strata_user(plain, "scram", "set", "dave", "-m", "SCRAM-SHA-512", "--password", "dave-secret")
        strata_user(plain, "scram", "set", "erin", "--password", "erin-secret")
        strata_user(plain, "scram", "delete", "erin")
        described = strata_user(plain, "scram", "describe")
        assert "dave\tSCRAM-SHA-512\titerations=8192" in described
        assert "erin" not in described
        b.stop()
        b.start()
        roundtrip_confluent(cf(b, pki, ("SASL_PLAINTEXT", "SCRAM-SHA-512"), "dave", "dave-secret"), n=5)
        roundtrip_kafka_python(kp(b, pki, ("SASL_PLAINTEXT", "SCRAM-SHA-512"), "dave", "dave-secret"), n=5)
        confluent_fails(cf(b, pki, ("SASL_PLAINTEXT", "SCRAM-SHA-256"), "erin", "erin-secret"),
                        ["Authentication failed"])
    finally:
        b.close()
