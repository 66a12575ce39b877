//! Three controllers in one process on 127.0.0.1, talking over the real TCP transport:
//! forwarding, leader failover and catch-up, and losing and regaining the quorum.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use strata_controller::parse_quorum_voters;
use strata_controller::ApplyError;
use strata_controller::Controller;
use strata_controller::ControllerConfig;
use strata_controller::ControllerError;
use strata_controller::MetadataCommand;
use strata_controller::MetadataImage;
use tempfile::TempDir;
use uuid::Uuid;

/// Generous bound on anything that should happen "soon" (elections, catch-up).
const SOON: Duration = Duration::from_secs(15);

fn create(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.to_string(),
        id: Uuid::new_v4(),
        partitions: 3,
        replication_factor: 3,
        configs: BTreeMap::new(),
        internal: false,
        assignment: vec![],
        placement_start: 0,
    }
}

fn config() -> ControllerConfig {
    ControllerConfig {
        ready_timeout: Duration::from_secs(20),
        propose_timeout: Duration::from_secs(4),
        ..ControllerConfig::default()
    }
}

/// Three voters' directories and addresses (ports reserved by binding port 0).
struct Quorum {
    dirs: BTreeMap<u64, TempDir>,
    voters: BTreeMap<u64, String>,
}

impl Quorum {
    fn new() -> Quorum {
        let mut spec = Vec::new();
        for id in 1..=3u64 {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            spec.push(format!("{id}@{}", probe.local_addr().unwrap()));
        }
        let voters = parse_quorum_voters(&spec.join(",")).unwrap();
        let dirs = (1..=3)
            .map(|id| (id, tempfile::tempdir().unwrap()))
            .collect();
        Quorum { dirs, voters }
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.dirs[&id].path().to_path_buf()
    }

    async fn open(&self, id: u64) -> Result<Controller, ControllerError> {
        let listen = self.voters[&id].clone();
        Controller::open_cluster_with(&self.dir(id), id, self.voters.clone(), &listen, config())
            .await
    }

    /// Opens the given voters concurrently (a majority must be up for any to be ready).
    async fn open_all(self: &Arc<Self>, ids: &[u64]) -> BTreeMap<u64, Controller> {
        let tasks: Vec<_> = ids
            .iter()
            .map(|&id| {
                let q = self.clone();
                (id, tokio::spawn(async move { q.open(id).await }))
            })
            .collect();
        let mut out = BTreeMap::new();
        for (id, task) in tasks {
            out.insert(id, task.await.unwrap().unwrap());
        }
        out
    }
}

fn leader_of(c: &Controller) -> Option<u64> {
    c.raft().metrics().borrow().current_leader
}

async fn wait_for_image(c: &Controller, what: &str, pred: impl Fn(&MetadataImage) -> bool) {
    let mut images = c.subscribe();
    tokio::time::timeout(SOON, images.wait_for(|i| pred(i)))
        .await
        .unwrap_or_else(|_| panic!("node {} never saw {what}", c.node_id()))
        .unwrap();
}

async fn wait_for_leader(c: &Controller, not: Option<u64>) -> u64 {
    let start = Instant::now();
    loop {
        if let Some(l) = leader_of(c).filter(|l| Some(*l) != not) {
            return l;
        }
        assert!(
            start.elapsed() < SOON,
            "node {} saw no new leader",
            c.node_id()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_proposals_failover_and_catch_up() {
    let q = Arc::new(Quorum::new());
    let mut nodes = q.open_all(&[1, 2, 3]).await;
    let cluster_id = nodes[&1].image().cluster_id.clone();
    assert_eq!(cluster_id.len(), 22);
    for c in nodes.values() {
        assert_eq!(
            c.image().cluster_id,
            cluster_id,
            "one cluster id everywhere"
        );
    }

    // A follower forwards to the leader; everyone applies it.
    let leader = wait_for_leader(&nodes[&1], None).await;
    let follower = *nodes.keys().find(|id| **id != leader).unwrap();
    let image = nodes[&follower].propose(create("orders")).await.unwrap();
    assert!(image.topics.contains_key("orders"));
    assert!(
        nodes[&follower].image().topics.contains_key("orders"),
        "the proposer sees its own write when propose returns"
    );
    for c in nodes.values() {
        wait_for_image(c, "orders", |i| i.topics.contains_key("orders")).await;
    }
    // Validation errors come back through the forward too.
    let dup = nodes[&follower].propose(create("orders")).await;
    assert!(
        matches!(
            dup,
            Err(ControllerError::Rejected(
                ApplyError::TopicAlreadyExists { .. }
            ))
        ),
        "{dup:?}"
    );

    // Stop the leader: the others elect a new one and carry on.
    let old = nodes.remove(&leader).unwrap();
    old.shutdown().await.unwrap();
    let survivor = nodes.values().next().unwrap().clone();
    let new_leader = wait_for_leader(&survivor, Some(leader)).await;
    assert_ne!(new_leader, leader);
    let mut proposed = None;
    for _ in 0..3 {
        match survivor.propose(create("after-failover")).await {
            Ok(image) => {
                proposed = Some(image);
                break;
            }
            Err(e) => eprintln!("retrying after: {e}"),
        }
    }
    assert!(proposed.is_some(), "proposals continue after failover");

    // The old leader comes back from its directory and catches up to the same image.
    let back = q.open(leader).await.unwrap();
    wait_for_image(&back, "after-failover", |i| {
        i.topics.contains_key("after-failover")
    })
    .await;
    let reference = survivor.image();
    wait_for_image(&back, "the survivors' image", |i| *i == *reference).await;
    let image = back.propose(create("from-returned")).await.unwrap();
    assert!(image.topics.contains_key("from-returned"));
    nodes.insert(leader, back);
    for c in nodes.values() {
        wait_for_image(c, "from-returned", |i| {
            i.topics.contains_key("from-returned")
        })
        .await;
        assert_eq!(c.image().cluster_id, cluster_id);
    }
    for c in nodes.values() {
        c.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_quorum_fails_clearly_then_recovers() {
    let q = Arc::new(Quorum::new());
    let mut nodes = q.open_all(&[1, 2, 3]).await;
    nodes[&1].propose(create("before")).await.unwrap();

    // Stop the leader and one follower; the last node cannot commit anything.
    let leader = wait_for_leader(&nodes[&1], None).await;
    let other = *nodes.keys().find(|id| **id != leader).unwrap();
    let lone = *nodes
        .keys()
        .find(|id| **id != leader && **id != other)
        .unwrap();
    for id in [leader, other] {
        nodes.remove(&id).unwrap().shutdown().await.unwrap();
    }
    let started = Instant::now();
    let err = tokio::time::timeout(SOON, nodes[&lone].propose(create("lost")))
        .await
        .expect("propose without a quorum must not hang")
        .unwrap_err();
    assert!(started.elapsed() < SOON);
    match &err {
        ControllerError::NoQuorum {
            reachable, voters, ..
        } => assert_eq!((*reachable, *voters), (1, 3), "{err}"),
        other => panic!("expected NoQuorum, got {other:?}"),
    }
    assert!(err.to_string().contains("only 1 of 3 voters"), "{err}");

    // One voter back is a majority again.
    nodes.insert(other, q.open(other).await.unwrap());
    let mut ok = false;
    for _ in 0..3 {
        match nodes[&lone].propose(create("recovered")).await {
            Ok(image) => {
                ok = image.topics.contains_key("recovered");
                break;
            }
            Err(e) => eprintln!("retrying after: {e}"),
        }
    }
    assert!(ok, "proposals succeed once a majority is back");
    wait_for_image(&nodes[&other], "recovered", |i| {
        i.topics.contains_key("recovered")
    })
    .await;
    for c in nodes.values() {
        c.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_that_lost_its_followers_does_not_hang() {
    let q = Arc::new(Quorum::new());
    let mut nodes = q.open_all(&[1, 2, 3]).await;
    let leader = wait_for_leader(&nodes[&1], None).await;
    let followers: Vec<u64> = nodes.keys().copied().filter(|id| *id != leader).collect();
    for id in &followers {
        nodes.remove(id).unwrap().shutdown().await.unwrap();
    }
    let err = tokio::time::timeout(SOON, nodes[&leader].propose(create("lost")))
        .await
        .expect("propose on a leader without followers must not hang")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::NoQuorum {
                reachable: 1,
                voters: 3,
                ..
            }
        ),
        "{err}"
    );

    nodes.insert(followers[0], q.open(followers[0]).await.unwrap());
    let mut ok = false;
    for _ in 0..3 {
        match nodes[&leader].propose(create("recovered")).await {
            Ok(image) => {
                ok = image.topics.contains_key("recovered");
                break;
            }
            Err(e) => eprintln!("retrying after: {e}"),
        }
    }
    assert!(ok, "proposals succeed once a follower is back");
    for c in nodes.values() {
        c.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_node_outside_the_voter_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let voters = parse_quorum_voters("1@127.0.0.1:1,2@127.0.0.1:2").unwrap();
    let err = Controller::open_cluster(dir.path(), 7, voters, "127.0.0.1:0")
        .await
        .err()
        .expect("node 7 is not a voter");
    assert!(
        matches!(err, ControllerError::NotAVoter { node_id: 7, .. }),
        "{err}"
    );
}

/// A replaced node (issue 17): each voter in turn loses its whole directory and comes back
/// empty with the same id. It rebuilds the log from the leader (openraft's
/// `loosen-follower-log-revert` keeps the leader from panicking), votes again only once it
/// caught up, and the quorum then commits with it while another voter is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_voter_rejoins_with_the_same_id_and_catches_up() {
    let q = Arc::new(Quorum::new());
    let mut nodes = q.open_all(&[1, 2, 3]).await;
    for i in 0..30 {
        nodes[&2]
            .propose(create(&format!("before-{i}")))
            .await
            .unwrap();
    }
    for (round, wiped) in [1u64, 3].into_iter().enumerate() {
        let node = nodes.remove(&wiped).unwrap();
        node.shutdown().await.unwrap();
        drop(node);
        let dir = q.dir(wiped);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
        let other = *nodes.keys().next().unwrap();
        nodes[&other]
            .propose(create(&format!("while-down-{round}")))
            .await
            .unwrap();
        // The lowest id does not start a second cluster: it asks its peers first.
        let back = q.open(wiped).await.unwrap();
        let want = nodes[&other].image();
        wait_for_image(&back, "the whole image", |i| {
            i.cluster_id == want.cluster_id && i.topics.len() == want.topics.len()
        })
        .await;
        let start = Instant::now();
        while back.is_catching_up() {
            assert!(start.elapsed() < SOON, "node {wiped} never caught up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!q
            .dir(wiped)
            .join(strata_controller::rejoin::MARKER)
            .exists());
        nodes.insert(wiped, back);

        // With one of the others down, the quorum needs the wiped voter (its vote, if the
        // leader was the one stopped).
        let down = *nodes.keys().find(|id| **id != wiped).unwrap();
        let stopped = nodes.remove(&down).unwrap();
        stopped.shutdown().await.unwrap();
        drop(stopped);
        let up = *nodes.keys().find(|id| **id != wiped).unwrap();
        nodes[&up]
            .propose(create(&format!("after-{round}")))
            .await
            .unwrap_or_else(|e| panic!("no quorum of {wiped} and {up}: {e}"));
        nodes.insert(down, q.open(down).await.unwrap());
    }
    for n in nodes.values() {
        wait_for_image(n, "every topic", |i| i.topics.len() == 30 + 2 + 2).await;
    }
    for n in nodes.values() {
        n.shutdown().await.unwrap();
    }
}

/// A broker-only node (issue 17, `process.roles=broker`) joins a running quorum as a learner:
/// it follows the metadata log and proposes through the leader, but does not count for the
/// quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_follows_the_log_without_counting_for_the_quorum() {
    let q = Arc::new(Quorum::new());
    let nodes = q.open_all(&[1, 2, 3]).await;
    nodes[&1].propose(create("before")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap().to_string();
    drop(probe);
    let learner =
        Controller::open_learner_with(dir.path(), 4, q.voters.clone(), &addr, &addr, config())
            .await
            .unwrap();
    wait_for_image(&learner, "the topic", |i| i.topics.contains_key("before")).await;
    learner.propose(create("from-learner")).await.unwrap();
    wait_for_image(&nodes[&2], "the learner's topic", |i| {
        i.topics.contains_key("from-learner")
    })
    .await;
    let m = nodes[&1].raft().metrics().borrow().clone();
    let voters: Vec<u64> = m.membership_config.voter_ids().collect();
    let learners: Vec<u64> = m.membership_config.membership().learner_ids().collect();
    assert_eq!((voters, learners), (vec![1, 2, 3], vec![4]));
    assert!(matches!(
        Controller::open_learner_with(dir.path(), 2, q.voters.clone(), &addr, &addr, config())
            .await,
        Err(ControllerError::LearnerIsAVoter { node_id: 2 })
    ));

    // Two voters down: the learner does not make a majority.
    for id in [2, 3] {
        nodes[&id].shutdown().await.unwrap();
    }
    let err = learner.propose(create("no-quorum")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::NoQuorum { .. } | ControllerError::ProposeTimedOut { .. }
        ),
        "{err}"
    );
    learner.shutdown().await.unwrap();
    nodes[&1].shutdown().await.unwrap();
}
