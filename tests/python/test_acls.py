"""The ACL matrix with real clients (confluent-kafka, and kafka-python's admin client for
CreateAcls/DescribeAcls): produce, consume, group join and commit, create and delete
topic, describe configs and idempotent produce, each allowed and denied by literal and by
prefixed rules; a DENY wins over an ALLOW; a super user can do anything; Metadata hides
topics a principal may not describe. ACLs are managed with `strata acl` as the super user.

One broker with the StandardAuthorizer on a SASL_PLAINTEXT listener, PLAIN users admin
(super user), alice, bob and eve. Every test uses its own topic and group names."""

import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from conftest import BINARY, Broker

USERS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw", "eve": "eve-pw"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker({
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "group.initial.rebalance.delay.ms": 0,
        "offsets.topic.num.partitions": 2,
        "connection.failed.authentication.delay.ms": 0,
    })
    props = tmp_path_factory.mktemp("acl") / "admin.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                     "sasl.username=admin\nsasl.password=admin-pw\n")
    b.admin_properties = str(props)
    b.bootstrap = b.listeners["SASL_PLAINTEXT"]
    yield b
    b.close()


def conf(broker, user, **extra):
    return {"bootstrap.servers": broker.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": USERS[user],
            **extra}


def acl(broker, *args):
    out = subprocess.run([str(BINARY), "acl", "-b", broker.bootstrap, "--command-config",
                          broker.admin_properties, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def name(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(broker, topic, user="admin"):
    """Creates `topic` as `user`; the error code on failure, else None."""
    a = AdminClient(conf(broker, user))
    fut = a.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)[topic]
    try:
        fut.result(20)
        return None
    except KafkaException as e:
        return e.args[0].code()


def produce(broker, user, topic, n=5, **extra):
    """Produces n records; the delivery error codes (empty when all were delivered)."""
    errors = []
    p = Producer(conf(broker, user, **{"message.timeout.ms": 8000, **extra}))
    for i in range(n):
        p.produce(topic, f"v{i}".encode(),
                  on_delivery=lambda e, m: errors.append(e.code()) if e else None)
    p.flush(20)
    return errors


def consume(broker, user, topic, group, n=5, commit=False):
    """Subscribes as `group`; (values, error codes seen)."""
    c = Consumer(conf(broker, user, **{"group.id": group, "auto.offset.reset": "earliest",
                                      "enable.auto.commit": False}))
    c.subscribe([topic])
    got, errors, deadline = [], [], time.time() + 20
    while len(got) < n and time.time() < deadline and not errors:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                errors.append(m.error().code())
            continue
        got.append(m.value().decode())
    if commit and got:
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed[0].offset == len(got)
    c.close()
    return got, errors


AUTH_TOPIC = KafkaError.TOPIC_AUTHORIZATION_FAILED
AUTH_GROUP = KafkaError.GROUP_AUTHORIZATION_FAILED
AUTH_CLUSTER = KafkaError.CLUSTER_AUTHORIZATION_FAILED


@pytest.mark.parametrize("pattern", ["literal", "prefixed"])
def test_produce_allowed_and_denied(broker, pattern):
    topic = name("p")
    assert create_topic(broker, topic) is None
    resource = topic if pattern == "literal" else topic[:4]
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Write",
        "--topic", resource, "--resource-pattern-type", pattern)
    assert produce(broker, "alice", topic) == []
    assert set(produce(broker, "bob", topic)) == {AUTH_TOPIC}


@pytest.mark.parametrize("pattern", ["literal", "prefixed"])
def test_consume_group_join_and_commit(broker, pattern):
    topic, group = name("c"), name("g")
    assert create_topic(broker, topic) is None
    assert produce(broker, "admin", topic) == []
    t_res = topic if pattern == "literal" else topic[:4]
    g_res = group if pattern == "literal" else group[:4]
    # Topic READ but no group ACL: the group is refused.
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Read",
        "--topic", t_res, "--resource-pattern-type", pattern)
    got, errors = consume(broker, "alice", topic, group)
    assert got == [] and AUTH_GROUP in errors, errors
    # With the group: join, consume and commit.
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Read",
        "--group", g_res, "--resource-pattern-type", pattern)
    got, errors = consume(broker, "alice", topic, group, commit=True)
    assert got == [f"v{i}" for i in range(5)] and errors == []
    # Bob has the group but not the topic.
    acl(broker, "add", "--allow-principal", "User:bob", "--operation", "Read", "--group", group)
    got, errors = consume(broker, "bob", topic, group)
    assert got == [] and AUTH_TOPIC in errors, errors


@pytest.mark.parametrize("pattern", ["literal", "prefixed"])
def test_create_and_delete_topic(broker, pattern):
    topic = name("team")
    resource = topic if pattern == "literal" else "team-"
    assert create_topic(broker, topic, "alice") == AUTH_TOPIC
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Create",
        "--operation", "Delete", "--topic", resource, "--resource-pattern-type", pattern)
    assert create_topic(broker, topic, "alice") is None
    assert create_topic(broker, name("other"), "alice") == AUTH_TOPIC
    # Bob may not delete it; alice may.
    for user, want in (("bob", AUTH_TOPIC), ("alice", None)):
        admin = AdminClient(conf(broker, user))
        fut = admin.delete_topics([topic], operation_timeout=10)[topic]
        try:
            fut.result(20)
            code = None
        except KafkaException as e:
            code = e.args[0].code()
        assert code == want, (user, code)


@pytest.mark.parametrize("pattern", ["literal", "prefixed"])
def test_describe_configs(broker, pattern):
    topic = name("cfg")
    assert create_topic(broker, topic) is None
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "DescribeConfigs",
        "--topic", topic if pattern == "literal" else "cfg-", "--resource-pattern-type", pattern)

    def describe(user):
        res = ConfigResource(ResourceType.TOPIC, topic)
        try:
            admin = AdminClient(conf(broker, user))
            return admin.describe_configs([res])[res].result(20)
        except KafkaException as e:
            return e.args[0].code()

    configs = describe("alice")
    assert "retention.ms" in configs
    assert describe("bob") == AUTH_TOPIC


@pytest.mark.parametrize("pattern", ["literal", "prefixed"])
def test_idempotent_produce(broker, pattern):
    topic = name("idem")
    assert create_topic(broker, topic) is None
    # KIP-679: WRITE on a topic is enough for an idempotent producer.
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Write",
        "--topic", topic if pattern == "literal" else "idem-", "--resource-pattern-type", pattern)
    assert produce(broker, "alice", topic, **{"enable.idempotence": True}) == []
    # Eve may not write anywhere: InitProducerId is refused on the cluster.
    errors = []
    p = Producer(conf(broker, "eve", **{"enable.idempotence": True, "message.timeout.ms": 8000,
                                       "error_cb": lambda e: errors.append(e.code())}))
    p.produce(topic, b"x", on_delivery=lambda e, m: errors.append(e.code()) if e else None)
    deadline = time.time() + 15
    while time.time() < deadline and AUTH_CLUSTER not in errors:
        try:
            p.poll(0.2)
        except KafkaException as e:  # librdkafka raises the fatal error from poll
            errors.append(e.args[0].code())
    assert AUTH_CLUSTER in errors, errors
    # With IDEMPOTENT_WRITE on the cluster eve gets a producer id, but still no topic.
    acl(broker, "add", "--allow-principal", "User:eve", "--operation", "IdempotentWrite", "--cluster")
    assert set(produce(broker, "eve", topic, **{"enable.idempotence": True})) == {AUTH_TOPIC}
    acl(broker, "remove", "--allow-principal", "User:eve", "--cluster")


def test_deny_wins(broker):
    base = name("deny")
    open_t, secret = f"{base}-open", f"{base}-secret"
    for t in (open_t, secret):
        assert create_topic(broker, t) is None
    acl(broker, "add", "--allow-principal", "User:*", "--operation", "All",
        "--topic", base, "--resource-pattern-type", "prefixed")
    acl(broker, "add", "--deny-principal", "User:alice", "--operation", "Write", "--topic", secret)
    assert produce(broker, "alice", open_t) == []
    assert set(produce(broker, "alice", secret)) == {AUTH_TOPIC}
    assert produce(broker, "bob", secret) == []
    # A prefixed DENY over a literal ALLOW.
    acl(broker, "add", "--allow-principal", "User:bob", "--operation", "Write", "--topic", open_t)
    acl(broker, "add", "--deny-principal", "User:bob", "--operation", "All",
        "--topic", base, "--resource-pattern-type", "prefixed")
    assert set(produce(broker, "bob", open_t)) == {AUTH_TOPIC}


def test_super_user_can_do_anything(broker):
    topic, group = name("su"), name("sug")
    # Even a DENY for everyone does not stop a super user.
    acl(broker, "add", "--deny-principal", "User:*", "--operation", "All", "--topic", topic)
    assert create_topic(broker, topic, "admin") is None
    assert produce(broker, "admin", topic, **{"enable.idempotence": True}) == []
    got, errors = consume(broker, "admin", topic, group, commit=True)
    assert len(got) == 5 and errors == []
    admin = AdminClient(conf(broker, "admin"))
    admin.delete_topics([topic], operation_timeout=10)[topic].result(20)


def test_metadata_hides_undescribable_topics(broker):
    seen, hidden = name("seen"), name("hidden")
    for t in (seen, hidden):
        assert create_topic(broker, t) is None
    acl(broker, "add", "--allow-principal", "User:bob", "--operation", "Describe", "--topic", seen)
    topics = Producer(conf(broker, "bob")).list_topics(timeout=10).topics
    assert seen in topics and hidden not in topics
    assert hidden in Producer(conf(broker, "admin")).list_topics(timeout=10).topics


def test_acl_cli_list_and_remove(broker):
    topic = name("cli")
    assert create_topic(broker, topic) is None
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", topic)
    listed = acl(broker, "list", "--topic", topic)
    assert f"TOPIC:LITERAL:{topic}\tUser:alice\t*\tWRITE\tALLOW" in listed, listed
    assert produce(broker, "alice", topic) == []
    out = acl(broker, "remove", "--allow-principal", "User:alice", "--topic", topic)
    assert "removed 1 ACLs" in out
    assert acl(broker, "list", "--topic", topic) == ""
    assert set(produce(broker, "alice", topic)) == {AUTH_TOPIC}


def test_acl_apis_need_cluster_rights(broker):
    """Non-super users cannot manage ACLs; kafka-python's admin client manages them too."""
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, KafkaAdminClient, ResourcePattern,
                             ResourcePatternFilter, ResourceType as KRT)

    def client(user):
        return KafkaAdminClient(bootstrap_servers=broker.bootstrap, security_protocol="SASL_PLAINTEXT",
                                sasl_mechanism="PLAIN", sasl_plain_username=user,
                                sasl_plain_password=USERS[user])

    topic = name("kp")
    binding = ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                  ResourcePattern(KRT.TOPIC, topic, ACLResourcePatternType.LITERAL))
    admin = client("admin")
    result = admin.create_acls([binding])
    assert result["failed"] == [] and len(result["succeeded"]) == 1, result
    flt = ACLFilter("User:alice", None, ACLOperation.ANY, ACLPermissionType.ANY,
                    ResourcePatternFilter(KRT.TOPIC, topic, ACLResourcePatternType.LITERAL))
    found, err = admin.describe_acls(flt)
    assert len(found) == 1 and found[0].operation == ACLOperation.READ
    admin.close()
    bob = client("bob")
    result = bob.create_acls([binding])
    assert len(result["failed"]) == 1, result
    bob.close()


def test_authorized_operations_are_reported(broker):
    """describe_topics/describe_cluster with include_authorized_operations list what the
    principal may do (Metadata v8+ and DescribeCluster bit fields)."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AclOperation as Op
    topic = name("ops")
    assert create_topic(broker, topic) is None
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Read",
        "--operation", "AlterConfigs", "--topic", topic)
    admin = AdminClient(conf(broker, "alice"))
    d = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(20)
    # READ implies DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    assert set(d.authorized_operations) == {Op.READ, Op.DESCRIBE, Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS}
    su = AdminClient(conf(broker, "admin"))
    cluster = su.describe_cluster(include_authorized_operations=True).result(20)
    assert Op.ALTER in cluster.authorized_operations and Op.IDEMPOTENT_WRITE in cluster.authorized_operations


@pytest.mark.parametrize("pattern", ["literal", "prefixed"])
def test_transactional_produce(broker, pattern):
    """A transactional producer needs WRITE on its transactional id (literal or prefixed)
    and on its topics; without the id it is refused with
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED, without the topic its transaction fails."""
    topic, txn = name("tx"), name("txid")
    assert create_topic(broker, topic) is None
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Write",
        "--topic", topic)

    def init(user, txn_id):
        p = Producer(conf(broker, user, **{"transactional.id": txn_id,
                                          "transaction.timeout.ms": 10000}))
        try:
            p.init_transactions(15)
            return p, None
        except KafkaException as e:
            return p, e.args[0].code()

    _, code = init("alice", txn)
    assert code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, code
    acl(broker, "add", "--allow-principal", "User:alice", "--allow-principal", "User:bob",
        "--operation", "Write", "--operation", "Describe",
        "--transactional-id", txn if pattern == "literal" else "txid-",
        "--resource-pattern-type", pattern)
    p, code = init("alice", txn)
    assert code is None, code
    p.begin_transaction()
    p.produce(topic, b"committed")
    p.commit_transaction(15)
    got, errors = consume(broker, "admin", topic, name("g"), n=2)
    assert got[:1] == ["committed"] and errors == []
    # Bob has the transactional id but not the topic: the transaction cannot commit.
    p, code = init("bob", txn)
    assert code is None, code
    p.begin_transaction()
    p.produce(topic, b"refused")
    with pytest.raises(KafkaException):
        p.commit_transaction(15)


def test_describe_producers_needs_describe_on_the_topic(broker):
    """kafka-python's describe_producers (DescribeProducers): a principal with DESCRIBE on
    the topic (here implied by READ) sees the partition's producers; one without gets
    TOPIC_AUTHORIZATION_FAILED."""
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TopicAuthorizationFailedError

    def client(user):
        return KafkaAdminClient(bootstrap_servers=broker.bootstrap, security_protocol="SASL_PLAINTEXT",
                                sasl_mechanism="PLAIN", sasl_plain_username=user,
                                sasl_plain_password=USERS[user])

    topic = name("dp")
    assert create_topic(broker, topic) is None
    assert produce(broker, "admin", topic, n=3, **{"enable.idempotence": True}) == []
    acl(broker, "add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", topic)
    alice = client("alice")
    state = alice.describe_producers([KTP(topic, 0)])[KTP(topic, 0)]
    assert len(state.active_producers) == 1, state
    p = state.active_producers[0]
    assert (p.last_sequence, p.current_transaction_start_offset) == (2, -1), p
    alice.close()
    bob = client("bob")
    # Metadata hides the topic from bob, so ask the node (node.id 1) directly.
    with pytest.raises(TopicAuthorizationFailedError):
        bob.describe_producers([KTP(topic, 0)], broker_id=1)
    bob.close()
