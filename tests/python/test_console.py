"""The web console (issue 20) in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium with no download): a broker with a tiered topic whose first records
are only in the remote tier (moto S3). Every page opens without browser console errors,
the numbers shown match confluent-kafka's answers, the record browser shows a record read
from the remote tier, and an edit is refused while the console is read-only. Screenshots
go to target/console-screenshots/ (printed).

Needs `S3_TEST_ENDPOINT` (moto, as scripts/test.sh starts it) and chromedriver."""

import os
import pathlib
import shutil
import time
import uuid

import pytest

from conftest import ROOT

S3 = os.environ.get("S3_TEST_ENDPOINT")
BUCKET = os.environ.get("S3_TEST_BUCKET", "strata-test")
DRIVER = "/usr/bin/chromedriver"
SHOTS = ROOT / "target" / "console-screenshots"

pytestmark = pytest.mark.skipif(
    (not S3 or not shutil.which("chromium") or not os.path.exists(DRIVER))
    and os.environ.get("CI") != "true",
    reason="needs S3_TEST_ENDPOINT (moto) and Debian's chromium + chromium-driver")

TOPIC = "console-tiered"
RECORDS = 400


def settings():
    assert S3, "CI=true but S3_TEST_ENDPOINT is not set: scripts/test.sh must start moto"
    return {
        "console.listener": "127.0.0.1:0",
        "remote.storage.url": f"s3://{BUCKET}/py-console-{uuid.uuid4()}",
        "remote.storage.s3.endpoint": S3,
        "remote.storage.s3.region": "us-east-1",
        "remote.storage.s3.path.style": "true",
        "remote.storage.s3.access.key.id": "test",
        "remote.storage.s3.secret.access.key": "test",
        "remote.log.manager.task.interval.ms": 100,
    }


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield d
    d.quit()


def cells(driver, css):
    from selenium.webdriver.common.by import By
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def visit(driver, url, shot):
    driver.get(url)
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{shot}.png"))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{url}: browser console errors {errors}"


def local_start(broker, timeout=90):
    """Waits until the leader's local log no longer starts at 0 (records only remote)."""
    import subprocess
    from conftest import BINARY
    deadline, row = time.time() + timeout, None
    while time.time() < deadline:
        out = subprocess.run([str(BINARY), "tier", "status", "-b", broker.addr, TOPIC],
                             capture_output=True, text=True, timeout=30)
        lines = out.stdout.splitlines()
        if out.returncode == 0 and len(lines) >= 2:
            row = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
            if row.get("LOCAL-START") not in (None, "-", "0"):
                return int(row["LOCAL-START"])
        else:
            row = out.stderr.strip() or out.stdout.strip()
        time.sleep(0.3)
    raise AssertionError(f"nothing left the local tier: {row}\n{broker.log()[-3000:]}")


def test_console_pages_show_the_kafka_answers(make_broker, browser):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    from selenium.webdriver.common.by import By

    b = make_broker(settings())
    url = b.console_url.rstrip("/")
    print(f"\nconsole screenshots in {SHOTS}")
    admin = AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([
        NewTopic(TOPIC, 1, 1, config={"remote.storage.enable": "true", "segment.bytes": "4096",
                                      "local.retention.bytes": "4096"}),
        NewTopic("console-plain", 3, 1),
    ]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": b.addr, "linger.ms": 0})
    for i in range(RECORDS):
        p.produce(TOPIC, key=f"k{i}".encode(), value=f'{{"n": {i}, "pad": "{"x" * 40}"}}'.encode(),
                  headers=[("h", b"v")])
        if i % 50 == 0:
            p.flush(10)
    p.flush(10)
    # A group with lag: it commits offset 100 of the 400 records.
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "console-group",
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(TOPIC, 0, 100)], asynchronous=False)
    low, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
    c.close()
    start = local_start(b)

    md = admin.list_topics(timeout=10)
    visit(browser, url + "/", "cluster")
    total = sum(len(t.partitions) for t in md.topics.values())
    assert cells(browser, "#partitions") == [str(total)]
    assert cells(browser, "#offline") == ["0"]
    assert str(md.controller_id) == cells(browser, "#controller")[0]

    visit(browser, url + "/topics", "topics")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-topic="console-plain"] td.partitions')
    assert row.text == str(len(md.topics["console-plain"].partitions))

    visit(browser, f"{url}/topics/{TOPIC}", "topic")
    assert cells(browser, "#remote") == ["on"]
    assert cells(browser, "td.log-start") == [str(low)]
    assert cells(browser, "td.end") == [str(high)]
    assert int(cells(browser, "td.local-start")[0]) >= start > 0
    assert int(cells(browser, "td.remote-bytes")[0]) > 0
    assert cells(browser, "td.leader") == [str(md.topics[TOPIC].partitions[0].leader)]

    # The record browser: offset 0 is below the local log start, so it came from S3.
    visit(browser, f"{url}/topics/{TOPIC}/records?partition=0&offset=0&format=json", "records")
    first = browser.find_element(By.CSS_SELECTOR, 'tr[data-offset="0"]')
    assert first.find_element(By.CSS_SELECTOR, "td.tier").text == "remote"
    assert '"n": 0' in first.find_element(By.CSS_SELECTOR, "td.value").text
    assert first.find_element(By.CSS_SELECTOR, "td.key").text == "k0"
    assert "h: v" in first.find_element(By.CSS_SELECTOR, "td.headers").text
    last = high - 1
    visit(browser, f"{url}/topics/{TOPIC}/records?partition=0&offset={last}", "records-local")
    assert cells(browser, f'tr[data-offset="{last}"] td.tier') == ["local"]

    # Read-only: the form's inputs are disabled and a save is refused with a message.
    browser.get(f"{url}/topics/{TOPIC}")
    browser.find_element(By.ID, "save").click()
    # The click submits the form: wait (bounded) for the answer page, not the old one.
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    notice = WebDriverWait(browser, 15).until(
        EC.presence_of_element_located((By.ID, "notice"))).text
    assert "Refused" in notice and "read-only" in notice, notice
    browser.save_screenshot(str(SHOTS / "edit-refused.png"))
    # The refusal is an HTTP 403, which Chromium logs; nothing else may be logged.
    unexpected = [e for e in browser.get_log("browser")
                  if e["level"] == "SEVERE" and "status of 403" not in e["message"]]
    assert not unexpected, unexpected
    res = admin.describe_configs([__import__("confluent_kafka.admin", fromlist=["ConfigResource"])
                                  .ConfigResource("topic", TOPIC)])
    for fut in res.values():
        assert fut.result(10)["retention.ms"].value == "604800000"

    # A live member of another group, with its assignment (bounded wait for it).
    member = Consumer({"bootstrap.servers": b.addr, "group.id": "console-live",
                       "client.id": "console-member", "auto.offset.reset": "earliest"})
    member.subscribe(["console-plain"])
    deadline = time.time() + 60
    while not member.assignment():
        assert time.time() < deadline, "the live member got no assignment"
        member.poll(0.2)

    # The group with lag: committed 100, end = high watermark, lag = the rest.
    visit(browser, f"{url}/groups", "groups")
    live = 'table[data-members="console-live"]'
    assert cells(browser, live + " td.client-id") == ["console-member"]
    assigned = cells(browser, live + " td.assigned")[0].split(", ")
    assert sorted(assigned) == [f"console-plain-{i}" for i in range(3)], assigned
    member.close()
    row = f'table[data-group="console-group"] tr[data-tp="{TOPIC}-0"]'
    assert cells(browser, row + " td.committed") == ["100"]
    assert cells(browser, row + " td.end") == [str(high)]
    assert cells(browser, row + " td.lag") == [str(high - 100)]


def scrape(broker):
    """The broker's /metrics text."""
    import urllib.request
    with urllib.request.urlopen(f"http://{broker.metrics_addr}/metrics", timeout=10) as r:
        return r.read().decode()


def store_requests(text, topic):
    """strata_tier_store_requests_total of `topic`, by request kind."""
    import re
    out = {}
    for m in re.finditer(r'^strata_tier_store_requests_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("topic") == topic:
            out[labels["request"]] = float(m.group(2))
    return out


def test_tier_page_and_charts(make_broker, browser):
    """The Tier page's request counts are /metrics' (retried while uploads move them), and
    the topic page's throughput chart has points after traffic (sampled every 200 ms)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from selenium.webdriver.common.by import By

    b = make_broker({**settings(), "console.metrics.sample.interval.ms": 200})
    url = b.console_url.rstrip("/")
    admin = AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([
        NewTopic(TOPIC, 1, 1, config={"remote.storage.enable": "true", "segment.bytes": "4096",
                                      "local.retention.bytes": "4096"})]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": b.addr, "linger.ms": 0})
    for i in range(RECORDS):
        p.produce(TOPIC, value=f"value-{i}-{'y' * 40}".encode())
        if i % 50 == 0:
            p.flush(10)
    p.flush(10)
    local_start(b)

    # Counts move while the tier works: the page matches /metrics read right after it
    # in one of a few tries (bounded).
    last = None
    for _ in range(20):
        visit(browser, url + "/tier", "tier")
        row = f'table#requests tr[data-topic="{TOPIC}"]'
        shown = {e.get_attribute("data-request"): float(e.text)
                 for e in browser.find_elements(By.CSS_SELECTOR, row + " td[data-request]")}
        metrics = store_requests(scrape(b), TOPIC)
        shown = {k: v for k, v in shown.items() if v}
        last = (shown, metrics)
        if shown and shown == metrics:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"tier page and /metrics disagree: {last}")
    assert shown.get("put", 0) > 0, shown
    assert float(cells(browser, "#cost")[0]) > 0
    assert browser.find_elements(By.CSS_SELECTOR, "#tier-throughput svg polyline")

    # A group with lag: its chart on the groups page gets points.
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "chart-group",
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(TOPIC, 0, 10)], asynchronous=False)
    c.close()
    deadline = time.time() + 30
    while True:
        visit(browser, f"{url}/groups", "groups-chart")
        lines = browser.find_elements(
            By.CSS_SELECTOR, f'#lag-chart-group svg polyline[data-series="{TOPIC}"]')
        if lines and len((lines[0].get_attribute("points") or "").split()) >= 2:
            break
        assert time.time() < deadline, "the lag chart got no points"
        time.sleep(0.5)
    assert "/s" not in browser.find_element(By.CSS_SELECTOR, "#lag-chart-group .legend").text

    # The topic page's chart: the produce line has sampled points.
    deadline = time.time() + 30
    while True:
        visit(browser, f"{url}/topics/{TOPIC}", "topic-chart")
        line = browser.find_element(
            By.CSS_SELECTOR, '#topic-throughput svg polyline[data-series="in (produce)"]')
        coords = (line.get_attribute("points") or "").split()
        if len(coords) >= 2:
            break
        assert time.time() < deadline, "the throughput chart got no points"
        time.sleep(0.5)


USERS = {"admin": "admin-pw", "alice": "alice-pw", "mallory": "mallory-pw"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")


@pytest.mark.parametrize("mechanisms", ["PLAIN", "SCRAM-SHA-512,PLAIN"])
def test_console_with_sasl_asks_for_credentials_and_applies_acls(make_broker, browser, tmp_path,
                                                                 mechanisms):
    """A SASL_PLAINTEXT-only broker: the console answers 401 without credentials (and with
    wrong ones), shows the topic to a user allowed to describe it and hides it from one
    who is not. It logs in with the listener's first mechanism: PLAIN, or SCRAM-SHA-512
    (users made with `strata user`)."""
    import base64
    import subprocess
    import urllib.error
    import urllib.request
    from confluent_kafka.admin import AdminClient, NewTopic
    from conftest import BINARY

    b = make_broker({
        "console.listener": "127.0.0.1:0",
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": mechanisms,
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": 0,
    })
    boot = b.listeners["SASL_PLAINTEXT"]
    url = b.console_url.rstrip("/")

    def conf(user):
        return {"bootstrap.servers": boot, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": USERS[user]}

    admin = AdminClient(conf("admin"))
    for f in admin.create_topics([NewTopic("secret-topic", 1, 1)]).values():
        f.result(15)
    props = tmp_path / "admin.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                     "sasl.username=admin\nsasl.password=admin-pw\n")
    out = subprocess.run([str(BINARY), "acl", "-b", boot, "--command-config", str(props), "add",
                          "--allow-principal", "User:alice", "--operation", "Describe",
                          "--topic", "secret-topic"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    if mechanisms.startswith("SCRAM"):
        for u in ("alice", "mallory"):
            out = subprocess.run([str(BINARY), "user", "-b", boot, "--command-config", str(props),
                                  "scram", "set", u, "-m", "SCRAM-SHA-512", "--password",
                                  USERS[u]], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr

    def get(path, user=None, password=None):
        req = urllib.request.Request(url + path)
        if user:
            token = base64.b64encode(f"{user}:{password or USERS[user]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    status, _ = get("/topics")
    assert status == 401
    status, _ = get("/topics", "alice", "wrong")
    assert status == 401
    status, body = get("/topics", "alice")
    assert status == 200 and 'data-topic="secret-topic"' in body, body[-2000:]
    status, body = get("/topics", "mallory")
    assert status == 200 and "secret-topic" not in body
    status, body = get("/topics/secret-topic", "mallory")
    assert status != 200 and "secret-topic" in body  # "unknown topic", not its partitions
    assert 'id="partitions"' not in body

    # In the browser, credentials in the URL are sent as basic auth.
    host = url.split("://", 1)[1]
    visit(browser, f"http://alice:{USERS['alice']}@{host}/topics", "sasl-topics")
    from selenium.webdriver.common.by import By
    assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-topic="secret-topic"]')
