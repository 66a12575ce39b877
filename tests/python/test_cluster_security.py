"""Node-to-node security: a 3-node cluster whose replica fetchers (INTERNAL, SSL with client
certificates) and Raft transport (CONTROLLER, SSL with client certificates) use mutual TLS
with the cluster CA, with clients on SASL_SSL and the ACL authorizer on.

- Records produced with acks=all over SASL_SSL survive a kill -9 of the partition leader,
  the killed node rejoins (its fetchers log in with its certificate) and the ISR is whole.
- ACLs created through one node are enforced by every node (they are metadata).
- A node restarted with a certificate from another CA cannot join: the others refuse its
  TLS handshakes on the controller listener, it never learns a leader, and it exits with
  the reason; the cluster keeps serving without it."""

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, free_port
from security_helpers import Pki

USERS = {"admin": "admin-pw", "alice": "alice-pw"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")


class SecureCluster:
    def __init__(self, pki, n=3):
        self.pki = pki
        self.ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, _, c) in enumerate(self.ports))
        self.base = {
            "controller.quorum.voters": voters,
            "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "INTERNAL",
            "ssl.keystore.location": pki.broker,
            "ssl.truststore.location": pki.ca,
            "listener.name.internal.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "listener.name.client.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.client.plain.sasl.jaas.config": JAAS,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The nodes' certificate subject: their fetchers need CLUSTER_ACTION.
            "super.users": "User:admin;User:CN=localhost,O=Strata Test",
            "group.initial.rebalance.delay.ms": 0,
            "offsets.topic.num.partitions": 3,
        }
        self.nodes = [None] * n
        errors = []

        def make(i):
            try:
                self.nodes[i] = Broker(self.settings(i))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=make, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        if errors or any(b is None for b in self.nodes):
            self.close()
            raise RuntimeError(f"cluster did not start: {errors}")

    def settings(self, i, **override):
        client, internal, controller = self.ports[i]
        return {**self.base, "node.id": i + 1,
                "listeners": f"CLIENT://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal},"
                             f"CONTROLLER://127.0.0.1:{controller}",
                **override}

    def conf(self, user="admin", nodes=None):
        nodes = nodes or range(len(self.nodes))
        return {"bootstrap.servers": ",".join(f"127.0.0.1:{self.ports[i][0]}" for i in nodes),
                "security.protocol": "SASL_SSL", "ssl.ca.location": self.pki.ca,
                "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": USERS[user]}

    def partitions(self, topic):
        md = AdminClient(self.conf()).list_topics(topic, timeout=10)
        t = md.topics[topic]
        return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}

    def brokers(self):
        return sorted(AdminClient(self.conf()).list_topics(timeout=10).brokers)

    def wait_for_isr(self, topic, size, timeout=40):
        deadline, parts = time.time() + timeout, None
        while time.time() < deadline:
            try:
                parts = self.partitions(topic)
                if parts and all(l >= 0 and len(isr) >= size for l, _, isr in parts.values()):
                    return parts
            except Exception:  # noqa: BLE001 - a node may be down
                pass
            time.sleep(0.3)
        raise AssertionError(f"{topic}: ISR did not reach {size}: {parts}\n{self.logs()}")

    def logs(self, lines=30):
        return "\n".join(f"--- node {i + 1}\n" + "\n".join(b.log().splitlines()[-lines:])
                         for i, b in enumerate(self.nodes) if b)

    def close(self):
        for b in self.nodes:
            if b:
                b.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki-cluster"))


@pytest.fixture
def cluster(pki):
    c = SecureCluster(pki)
    yield c
    c.close()


def produce(conf, topic, values):
    acked, errors = [], []
    p = Producer({**conf, "acks": "all", "message.timeout.ms": 30000, "linger.ms": 5})
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda e, m: errors.append(e) if e
                  else acked.append(m.value().decode()))
        p.poll(0)
    p.flush(60)
    return acked, errors


def read_all(conf, topic, want, timeout=40):
    c = Consumer({**conf, "group.id": f"r-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                  "enable.partition.eof": False})
    c.subscribe([topic])
    got, deadline = set(), time.time() + timeout
    while len(got) < want and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value().decode())
    c.close()
    return got


def test_mtls_between_nodes_survives_a_leader_kill(cluster):
    topic = "secured"
    admin = AdminClient(cluster.conf())
    admin.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
    cluster.wait_for_isr(topic, 3)
    acked, errors = produce(cluster.conf(), topic, [f"a{i}" for i in range(300)])
    assert not errors and len(acked) == 300

    leader = cluster.partitions(topic)[0][0]
    cluster.nodes[leader - 1].kill()
    survivors = [i for i in range(3) if i != leader - 1]
    more, errors = produce(cluster.conf(nodes=survivors), topic, [f"b{i}" for i in range(300)])
    assert not errors and len(more) == 300, errors[:3]

    cluster.nodes[leader - 1].start(cluster.ports[leader - 1][0])
    cluster.wait_for_isr(topic, 3)
    got = read_all(cluster.conf(), topic, 600)
    assert set(acked) | set(more) <= got, len(got)

    # ACLs are metadata: created through one node, enforced through another.
    other = survivors[0]
    assert cluster.conf(nodes=[other])  # the node alice will use
    errs = produce({**cluster.conf("alice", nodes=[other]), "message.timeout.ms": 8000},
                   topic, ["x"])[1]
    assert {e.code() for e in errs} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.WRITE, AclPermissionType.ALLOW)
    admin_first = AdminClient(cluster.conf(nodes=[leader - 1]))
    admin_first.create_acls([binding])[binding].result(20)
    acked, errs = produce(cluster.conf("alice", nodes=[other]), topic, ["y"])
    assert acked == ["y"] and not errs


def test_a_node_with_the_wrong_certificate_cannot_join(cluster, pki):
    topic = "guarded"
    admin = AdminClient(cluster.conf())
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(30)
    cluster.wait_for_isr(topic, 3)
    # Node 3 restarts on its own data with a certificate from another CA.
    node3 = cluster.nodes[2]
    node3.kill()
    rogue_pem = pki.dir / "rogue-node.pem"
    rogue_pem.write_text(open(pki.rogue_key).read() + open(pki.rogue_cert).read())
    node3.settings["ssl.keystore.location"] = str(rogue_pem)
    try:
        node3.start()
        started = True
    except RuntimeError:
        started = False  # it gave up waiting for a leader it could reach
    # The others refused its handshakes on the controller listener (its votes never arrive).
    deadline = time.time() + 20
    while time.time() < deadline:
        logs = cluster.nodes[0].log() + cluster.nodes[1].log()
        if "controller RPC connection refused: TLS handshake failed" in logs:
            break
        time.sleep(0.5)
    assert "controller RPC connection refused: TLS handshake failed" in logs, cluster.logs()
    # It is not a live broker, replicates nothing, and the cluster serves without it.
    for _ in range(10):
        assert cluster.brokers() == [1, 2]
        time.sleep(0.3)
    acked, errors = produce(cluster.conf(nodes=[0, 1]), topic, [f"v{i}" for i in range(50)])
    assert not errors and len(acked) == 50
    parts = cluster.partitions(topic)
    assert 3 not in parts[0][2], parts
    if started:
        node3.kill()


def test_a_transaction_across_nodes_commits_over_the_secured_inter_broker_listener(cluster):
    # The coordinator writes COMMIT markers to every partition leader, and leaders ask the
    # coordinator before a transaction's first batch (KIP-890): both through the INTERNAL
    # listener, which requires a client certificate.
    topic = "secured-txn"
    admin = AdminClient(cluster.conf())
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    leaders = {v[0] for v in cluster.partitions(topic).values()}
    p = Producer({**cluster.conf(), "transactional.id": "secured-txn", "linger.ms": 5})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, f"t{i}".encode(), partition=i % 3)
    p.commit_transaction(60)
    c = Consumer({**cluster.conf(), "group.id": f"r-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([topic])
    got, deadline = set(), time.time() + 40
    while len(got) < 30 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value().decode())
    c.close()
    assert got == {f"t{i}" for i in range(30)}, (len(got), leaders, cluster.logs())
