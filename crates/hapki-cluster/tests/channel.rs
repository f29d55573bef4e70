//! Three Raft nodes in one process talking over the real mutual-TLS cluster
//! channel on loopback: a write on the leader reaches every replica with the
//! same digest, a write or linearizable read on a follower goes through the
//! leader, and a node certificate from
//! another cluster's CA is refused in the TLS handshake. The channel accepts a
//! node only with the key the replicated node list records for it, and a
//! forwarded write only when the leader's authorizer accepts its origin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hapki_cluster::channel::{channel_key_of, serve, NodeIdentity, NODE_URI_PREFIX};
use hapki_cluster::{
    Authorizer, ClusterNode, MembershipChange, NodeAddr, NodeId, Origin, ProposeError, RaftSettings, MAX_NODES,
};
use hapki_domain::issue::{build_certificate, key_id, CertSpec, IssuerView, Publication};
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::name::{San, SubjectSpec};
use hapki_domain::profile::{ExtKeyUsage, KeyUsageBit};
use hapki_domain::serial::Serial;
use hapki_store::{Command, NodeRecord, NodeStanding, Role, Store, TokenRecord};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Ca {
    key: SigningKey,
    cert: Vec<u8>,
}

fn spec(key: &SigningKey, cn: &str, ca: bool, sans: Vec<San>) -> CertSpec {
    CertSpec {
        serial: Serial::from_u64(rand_u64()),
        not_before: 1_700_000_000,
        not_after: 4_000_000_000,
        subject: SubjectSpec::cn(cn).to_name().unwrap(),
        spki: key.spki(),
        sans,
        key_usage: if ca {
            vec![
                KeyUsageBit::KeyCertSign,
                KeyUsageBit::CrlSign,
                KeyUsageBit::DigitalSignature,
            ]
        } else {
            vec![KeyUsageBit::DigitalSignature]
        },
        ext_key_usage: if ca {
            vec![]
        } else {
            vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth]
        },
        ca,
        path_len: None,
        name_constraints: None,
        ocsp_no_check: false,
        publication: Publication::default(),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(42);
    h.finish() >> 1
}

fn new_ca(name: &str) -> Ca {
    let key = SigningKey::generate(KeyType::EcP256).unwrap();
    let cert = build_certificate(None, Some(&key), &spec(&key, name, true, vec![])).unwrap();
    Ca { key, cert }
}

fn identity(ca: &Ca, id: u64) -> NodeIdentity {
    let key = SigningKey::generate(KeyType::EcP256).unwrap();
    let sans = vec![
        San::parse("127.0.0.1").unwrap(),
        San::Uri(format!("{NODE_URI_PREFIX}{id:016x}")),
    ];
    let ca_sum = hapki_domain::issue::summarize(&ca.cert).unwrap();
    let subject = hapki_domain::name::name_from_der(&ca_sum.subject_der).unwrap();
    let kid = key_id(&ca_sum.spki);
    let view = IssuerView {
        subject: &subject,
        key_id: &kid,
        key: &ca.key,
    };
    let cert = build_certificate(Some(&view), None, &spec(&key, &format!("node {id:016x}"), false, sans)).unwrap();
    NodeIdentity {
        chain: vec![CertificateDer::from(cert), CertificateDer::from(ca.cert.clone())],
        key: Arc::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_pkcs8().unwrap()))),
        ca: CertificateDer::from(ca.cert.clone()),
    }
}

struct TestNode {
    _dir: tempfile::TempDir,
    node: ClusterNode,
    store: Store,
    addr: NodeAddr,
}

/// Accepts client writes made with the token `good`, and serial leases from nodes.
struct TestAuthorizer;

impl Authorizer for TestAuthorizer {
    fn command(&self, _from: NodeId, origin: &Origin, command: &Command) -> Result<(), String> {
        match (origin, command) {
            (Origin::Client { token }, _) if token == "good" => Ok(()),
            (Origin::Client { .. }, _) => Err("the token is not valid".into()),
            (Origin::Node, Command::LeaseSerials { .. }) => Ok(()),
            (Origin::Node, other) => Err(format!("a node may not propose {}", other.kind())),
            (Origin::Acme { .. } | Origin::Est { .. }, _) => Err("no ACME or EST request is valid here".into()),
        }
    }
    fn membership(&self, _from: NodeId, origin: &Origin, _change: &MembershipChange) -> Result<(), String> {
        match origin {
            Origin::Client { token } if token == "good" => Ok(()),
            _ => Err("only a good client changes the membership".into()),
        }
    }
}

fn good() -> Origin {
    Origin::Client { token: "good".into() }
}

/// The node list every test node starts with: each id with the key of its identity.
fn admissions(identities: &[(u64, &NodeIdentity)]) -> Vec<Command> {
    identities
        .iter()
        .map(|(id, ident)| Command::AdmitNode {
            node: NodeRecord {
                id: *id,
                name: format!("n{id}"),
                standing: NodeStanding::Admitted,
                admitted_at: 0,
                removed_at: None,
                channel_key: channel_key_of(ident.chain[0].as_ref()),
            },
        })
        .collect()
}

async fn start(ident: NodeIdentity, id: u64, admitted: &[Command]) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hapki.redb")).unwrap();
    let txn = store.begin_apply().unwrap();
    for cmd in admitted {
        hapki_store::apply(&txn, cmd).unwrap();
    }
    txn.commit().unwrap();
    let settings = RaftSettings {
        heartbeat_ms: 50,
        election_timeout_min_ms: 200,
        election_timeout_max_ms: 400,
        // Keep little log below a snapshot, so that a late node needs the snapshot.
        keep_below_snapshot: 20,
        ..Default::default()
    };
    let node = ClusterNode::start(store.clone(), dir.path(), id, &settings)
        .await
        .unwrap();
    node.install_authorizer(Arc::new(TestAuthorizer));
    node.network().set_identity(&ident).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = NodeAddr {
        name: format!("n{id}"),
        api: String::new(),
        cluster: listener.local_addr().unwrap().to_string(),
    };
    let state = node.channel_state();
    tokio::spawn(async move {
        serve(
            listener,
            ident,
            state,
            axum::Router::new(),
            hapki_cluster::channel::CHANNEL_LIMITS,
        )
        .await
        .unwrap()
    });
    TestNode {
        _dir: dir,
        node,
        store,
        addr,
    }
}

fn token(i: u8) -> Command {
    Command::CreateToken {
        token: TokenRecord {
            id: format!("t{i}"),
            hash: [i; 32],
            role: Role::Agent,
            name: String::new(),
            created_at: 0,
            expires_at: None,
            revoked: false,
            profiles: Vec::new(),
            issuers: Vec::new(),
        },
    }
}

/// What a node answers a vote request made with `ident`'s certificate: its status, or the
/// error of a refused handshake.
async fn vote_as(ident: &NodeIdentity, cluster: &str) -> Result<u16, reqwest::Error> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(ident.client_config().unwrap())
        .build()
        .unwrap();
    let resp = client
        .post(format!("https://{cluster}/raft/vote"))
        .body(vec![0u8])
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_over_mutual_tls() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let ca = new_ca("test internal CA");
    let ids = [11u64, 22, 33, 44];
    let idents: Vec<NodeIdentity> = ids.iter().map(|id| identity(&ca, *id)).collect();
    let admitted = admissions(&ids.iter().copied().zip(idents.iter()).collect::<Vec<_>>());
    let nodes = [
        start(idents[0].clone(), 11, &admitted).await,
        start(idents[1].clone(), 22, &admitted).await,
        start(idents[2].clone(), 33, &admitted).await,
    ];
    let members: BTreeMap<u64, NodeAddr> = [
        (11, nodes[0].addr.clone()),
        (22, nodes[1].addr.clone()),
        (33, nodes[2].addr.clone()),
    ]
    .into();
    nodes[0].node.initialize(members).await.unwrap();
    wait_until("a leader", || nodes.iter().all(|n| n.node.status().leader.is_some())).await;
    let leader_id = nodes[0].node.status().leader.unwrap();
    let leader = nodes.iter().find(|n| n.node.id == leader_id).unwrap();
    let follower = nodes.iter().find(|n| n.node.id != leader_id).unwrap();

    for i in 0..50 {
        assert_eq!(
            leader.node.propose(&good(), token(i)).await.unwrap(),
            hapki_store::CommandResult::Applied
        );
    }
    // A write sent to a follower is forwarded to the leader and answered by the follower.
    assert_eq!(
        follower.node.propose(&good(), token(99)).await.unwrap(),
        hapki_store::CommandResult::Applied
    );
    // The leader checks a forwarded write's origin again: a forged token, or a member writing
    // on its own what only clients write, is refused and nothing is applied.
    for origin in [Origin::Client { token: "forged".into() }, Origin::Node] {
        match follower.node.propose(&origin, token(98)).await {
            Err(ProposeError::Forbidden(why)) => assert!(!why.is_empty()),
            other => panic!("a forwarded write from {origin:?} must be refused, got {other:?}"),
        }
    }
    let forged = follower
        .node
        .change_membership(
            &Origin::Client { token: "forged".into() },
            MembershipChange::Remove {
                id: leader.node.id,
                voters_target: 3,
            },
        )
        .await;
    assert!(
        matches!(forged, Err(ProposeError::Forbidden(_))),
        "a forged membership change must be refused: {forged:?}"
    );
    match follower.node.propose(&good(), token(99)).await.unwrap() {
        hapki_store::CommandResult::Rejected { code, .. } => assert_eq!(code, hapki_store::RejectCode::Conflict),
        other => panic!("a duplicate forwarded command must be refused by the state machine, got {other:?}"),
    }
    // A linearizable read on a follower sees the write it just made.
    follower.node.linearizable().await.unwrap();
    assert_eq!(follower.store.reader().unwrap().tokens().unwrap().len(), 51);
    assert!(leader.node.members().iter().any(|m| m.id == leader.node.id));
    let target = leader.node.status().last_applied;
    wait_until("replication", || {
        nodes.iter().all(|n| n.node.status().last_applied >= target)
    })
    .await;
    let digests: Vec<String> = nodes
        .iter()
        .map(|n| n.store.reader().unwrap().digest().unwrap())
        .collect();
    assert!(digests.iter().all(|d| d == &digests[0]), "replicas differ: {digests:?}");
    assert_eq!(nodes[2].store.reader().unwrap().tokens().unwrap().len(), 51);

    // A node certificate from another cluster's CA: the handshake is refused.
    let foreign = identity(&new_ca("another cluster"), 11);
    let err = vote_as(&foreign, &leader.addr.cluster).await;
    assert!(err.is_err(), "a certificate from another CA must be refused");
    // A certificate of our CA for a member, but with another key than the one recorded for it:
    // refused per request, whatever the internal CA signed.
    let impostor = identity(&ca, 22);
    assert_eq!(
        vote_as(&impostor, &leader.addr.cluster).await.unwrap(),
        403,
        "a member's id with another key must be refused"
    );
    // A certificate of our CA for a node that is not a member (e.g. a removed one): refused per request.
    let stranger = identity(&ca, 77);
    assert_eq!(vote_as(&stranger, &leader.addr.cluster).await.unwrap(), 403);

    // A fourth node added after the log was compacted receives a snapshot over the
    // channel (streamed from the leader's state as it is read), then the log, and ends with the same state.
    let mut writes = tokio::task::JoinSet::new();
    for i in 100..=250u8 {
        let node = leader.node.clone();
        writes.spawn(async move { node.propose(&good(), token(i)).await.unwrap() });
    }
    while writes.join_next().await.is_some() {}
    for i in 0..80u8 {
        // One entry each, so that the log is longer than what is kept below a snapshot.
        leader
            .node
            .propose(&good(), Command::RevokeToken { id: format!("t{i}") })
            .await
            .unwrap();
    }
    leader.node.raft().trigger().snapshot().await.unwrap();
    wait_until("the leader to snapshot and purge its log", || {
        leader.node.raft().metrics().borrow().purged.is_some()
    })
    .await;
    let late = start(idents[3].clone(), 44, &admitted).await;
    leader
        .node
        .raft()
        .add_learner(44, late.addr.clone(), true)
        .await
        .unwrap();
    let target = leader.node.status().last_applied;
    wait_until("the late node to catch up", || {
        late.node.status().last_applied >= target
    })
    .await;
    assert!(
        late.node.raft().metrics().borrow().snapshot.is_some(),
        "the late node should have been sent a snapshot"
    );
    assert_eq!(
        late.store.reader().unwrap().digest().unwrap(),
        leader.store.reader().unwrap().digest().unwrap()
    );

    // A node admitted through the replicated state (its certificate was signed to join) may
    // call before it is a member; once recorded as removed it is refused again.
    let vote = || async { vote_as(&stranger, &leader.addr.cluster).await.unwrap() };
    let admit = Command::AdmitNode {
        node: NodeRecord {
            id: 77,
            name: "n77".into(),
            standing: NodeStanding::Admitted,
            admitted_at: 0,
            removed_at: None,
            channel_key: channel_key_of(stranger.chain[0].as_ref()),
        },
    };
    leader.node.propose(&good(), admit.clone()).await.unwrap();
    assert_ne!(vote().await, 403, "an admitted node may call");
    leader
        .node
        .propose(&good(), Command::RemoveNode { id: 77, at: 1 })
        .await
        .unwrap();
    assert_eq!(vote().await, 403, "a removed node is refused");
    let again = leader.node.propose(&good(), admit).await.unwrap();
    assert!(
        matches!(again, hapki_store::CommandResult::Rejected { .. }),
        "a removed node id cannot be admitted again: {again:?}"
    );

    // Removing a voter promotes the learner in its place; removing the leader from a follower
    // goes through the leader.
    let follower = nodes.iter().find(|n| n.node.id != leader.node.id).unwrap();
    let outcome = follower
        .node
        .change_membership(
            &good(),
            MembershipChange::Remove {
                id: follower.node.id,
                voters_target: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.promoted,
        Some(44),
        "the learner takes the removed voter's place"
    );
    let members = leader.node.members();
    assert_eq!(members.iter().filter(|m| m.voter).count(), 3, "{members:?}");
    assert!(!members.iter().any(|m| m.id == follower.node.id));

    // At most 20 nodes: learners that never answer fill the cluster, then the next is refused.
    let mut id = 1000;
    while leader.node.members().len() < MAX_NODES {
        id += 1;
        leader
            .node
            .change_membership(
                &good(),
                MembershipChange::AddLearner {
                    id,
                    addr: NodeAddr {
                        name: format!("n{id}"),
                        api: String::new(),
                        cluster: "127.0.0.1:9".into(),
                    },
                },
            )
            .await
            .unwrap();
    }
    let refused = leader
        .node
        .change_membership(
            &good(),
            MembershipChange::AddLearner {
                id: id + 1,
                addr: NodeAddr::default(),
            },
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("the most it may have"), "{refused}");

    for n in nodes.iter().chain(std::iter::once(&late)) {
        n.node.shutdown().await.unwrap();
    }
}
