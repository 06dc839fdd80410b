//! The shared state conformance suite against a real Redis.
//!
//! Set `KAILASH_TEST_REDIS_URL` (for example `redis://127.0.0.1:6379`) to run
//! it; without it every check prints "skipped".

use std::sync::Arc;

use kailash_core::clock::ManualClock;
use kailash_core::state::conformance::Harness;
use kailash_redis::{RedisOptions, RedisState};

/// A harness on the Redis the URL in `var` names (any topology), or
/// `None` when `var` is unset; a set but unusable one fails the test.
async fn harness_from(var: &str) -> Option<Harness> {
    let url = std::env::var(var).ok()?;
    let clock = Arc::new(ManualClock::starting_now());
    let options = RedisOptions::default()
        .with_key_prefix("kailash-test:")
        .with_require_connection(true);
    match RedisState::connect(&url, clock.clone(), options).await {
        Ok(state) => Some(Harness::new(state.into_shared(), clock)),
        Err(err) => panic!("{var} is set but Redis is not usable: {err}"),
    }
}

async fn redis_harness() -> Option<Harness> {
    harness_from("KAILASH_TEST_REDIS_URL").await
}

kailash_core::state_conformance_tests!(redis_harness);

/// What the cluster and Sentinel tests share: unique keys, a throwaway set
/// of servers started by a `.ci` script, and the wait for a failover.
mod throwaway {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use kailash_core::state::{Namespace, SharedState, StateError, StateKey};

    /// A key unique to this test process and call.
    pub(crate) fn unique(ns: Namespace, name: &str) -> StateKey {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        StateKey::global(ns, &format!("{}-{nanos}-{n}:{name}", std::process::id()))
    }

    /// Servers started by `script start <dir>` (a `.ci/redis-*` script),
    /// stopped with `script stop <dir>` when dropped, passed or not.
    pub(crate) struct Servers {
        script: String,
        dir: String,
        /// The URL the script printed.
        pub(crate) url: String,
    }

    impl Servers {
        /// Starts the servers of the script `var` names; `None` (the test
        /// prints why) without `KAILASH_TEST_SLOW` or the variable.
        pub(crate) fn start(var: &str) -> Option<Self> {
            if std::env::var_os("KAILASH_TEST_SLOW").is_none() {
                eprintln!("skipped: set KAILASH_TEST_SLOW=1 for the failover test");
                return None;
            }
            let Ok(script) = std::env::var(var) else {
                eprintln!("skipped: {var} is not set");
                return None;
            };
            let dir = std::env::temp_dir()
                .join(format!(
                    "kailash-throwaway-{}",
                    unique(Namespace::new("dir"), "x").id().replace(':', "-")
                ))
                .to_string_lossy()
                .into_owned();
            let out = std::process::Command::new(&script)
                .args(["start", &dir])
                .output()
                .unwrap();
            let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
            let servers = Self { script, dir, url };
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(servers)
        }

        /// SIGKILLs one primary.
        pub(crate) fn kill_primary(&self) {
            let killed = std::process::Command::new(&self.script)
                .args(["kill-primary", &self.dir])
                .output()
                .unwrap();
            assert!(killed.status.success());
        }
    }

    impl Drop for Servers {
        fn drop(&mut self) {
            let _ = std::process::Command::new(&self.script)
                .args(["stop", &self.dir])
                .status();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Writes `keys`, kills a primary, then reads them (and, with `write`,
    /// charges a counter each) in passes until a whole pass succeeds after
    /// refusals: every failure must be `Unavailable`, no operation may hang
    /// and no key may be lost. Returns the refused operations and the time
    /// from the kill to the first whole pass.
    pub(crate) async fn through_failover(
        state: &SharedState,
        servers: &Servers,
        keys: &[StateKey],
        write: bool,
    ) -> (u32, Duration) {
        for key in keys {
            state
                .kv
                .set(
                    key,
                    Bytes::from_static(b"v"),
                    Some(Duration::from_secs(600)),
                )
                .await
                .unwrap();
        }
        // Replication is asynchronous: let the replicas catch up before
        // the crash.
        tokio::time::sleep(Duration::from_millis(500)).await;
        servers.kill_primary();
        let started = Instant::now();
        let mut refused = 0u32;
        while started.elapsed() < Duration::from_secs(45) {
            let mut all_ok = true;
            for key in keys {
                let op = async {
                    let v = state.kv.get(key).await?;
                    if write {
                        state
                            .counters
                            .add(key, 1, Some(Duration::from_secs(60)))
                            .await?;
                    }
                    Ok::<_, StateError>(v)
                };
                match tokio::time::timeout(Duration::from_secs(10), op).await {
                    Ok(Ok(Some(v))) => assert_eq!(&v[..], b"v"),
                    Ok(Ok(None)) => panic!("{key} was lost in the failover"),
                    Ok(Err(StateError::Unavailable(_))) => {
                        refused += 1;
                        all_ok = false;
                    }
                    Ok(Err(other)) => panic!("{key}: {other}"),
                    Err(_) => panic!("an operation hung during the failover"),
                }
            }
            if all_ok && refused > 0 {
                return (refused, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not recovered within 45 s of the kill ({refused} refused operations)");
    }
}

/// The same suite, and what only a cluster has, against a real Redis
/// Cluster: set `KAILASH_TEST_REDIS_CLUSTER_URL` (a `redis+cluster://` seed
/// list; `.ci/redis-cluster/cluster.sh start <dir>` prints one).
mod cluster {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use kailash_core::clock::SystemClock;
    use kailash_core::state::conformance::Harness;
    use kailash_core::state::{
        Admission, BoundedAdd, Check, Namespace, Outcome, SharedState, StateError, StateKey,
        WhenFull,
    };
    use kailash_redis::{RedisOptions, RedisState};

    use crate::throwaway::{Servers, through_failover};

    const NS: Namespace = Namespace::new("cluster");

    fn cluster_url() -> Option<String> {
        let url = std::env::var("KAILASH_TEST_REDIS_CLUSTER_URL").ok();
        if url.is_none() {
            eprintln!("skipped: KAILASH_TEST_REDIS_CLUSTER_URL is not set");
        }
        url
    }

    async fn connect(url: &str, clock: Arc<dyn kailash_core::clock::Clock>) -> RedisState {
        let options = RedisOptions::default()
            .with_key_prefix("kailash-test:")
            .with_require_connection(true);
        match RedisState::connect(url, clock, options).await {
            Ok(state) => state,
            Err(err) => panic!("KAILASH_TEST_REDIS_CLUSTER_URL is set but not usable: {err}"),
        }
    }

    async fn cluster_harness() -> Option<Harness> {
        crate::harness_from("KAILASH_TEST_REDIS_CLUSTER_URL").await
    }

    kailash_core::state_conformance_tests!(cluster_harness);

    fn unique(name: &str) -> StateKey {
        crate::throwaway::unique(NS, name)
    }

    /// The seed nodes of a `redis+cluster://` URL, one URL each.
    fn seeds(url: &str) -> Vec<String> {
        let hosts = url.strip_prefix("redis+cluster://").unwrap();
        hosts
            .trim_end_matches('/')
            .split(',')
            .map(|h| format!("redis+cluster://{h}"))
            .collect()
    }

    /// A plan whose checks lie in different slots: a refusal late in the
    /// plan takes back the counter charges of every earlier slot, and an
    /// admitted plan keeps them all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plan_across_slots_keeps_its_semantics() {
        let Some(url) = cluster_url() else { return };
        let state = connect(&url, Arc::new(SystemClock)).await.into_shared();
        let (a, b, c) = (unique("a"), unique("b"), unique("c"));
        let window = Some(Duration::from_secs(60));
        let plan_of = |limit_c: i64| {
            let mut plan = Admission::new();
            for (key, limit) in [(&a, 10), (&b, 10), (&c, limit_c)] {
                plan.push(Check::Counter {
                    key: key.clone(),
                    delta: 1,
                    limit: Some(limit),
                    window,
                })
                .unwrap();
            }
            plan
        };
        let mut refused = plan_of(0);
        state.admit(&mut refused).await;
        assert!(!refused.admitted(), "{refused:?}");
        assert!(matches!(
            refused.outcome(2),
            Outcome::Counter(BoundedAdd::Refused(_))
        ));
        for key in [&a, &b, &c] {
            assert_eq!(state.counters.get(key).await.unwrap().value, 0, "{key}");
        }
        let mut admitted = plan_of(10);
        state.admit(&mut admitted).await;
        assert!(admitted.admitted(), "{admitted:?}");
        for key in [&a, &b, &c] {
            assert_eq!(state.counters.get(key).await.unwrap().value, 1, "{key}");
        }

        // A session whose record and index lie in two slots.
        let (record, index) = (unique("record"), unique("index"));
        state
            .kv
            .set(
                &record,
                Bytes::from_static(b"rec"),
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
        state
            .sets
            .insert(&index, "s-1", later, 3, WhenFull::EvictOldest)
            .await
            .unwrap();
        let mut plan = Admission::new();
        plan.push(Check::Live {
            record: record.clone(),
            index: index.clone(),
            member: "s-1".into(),
        })
        .unwrap();
        plan.push(Check::Counter {
            key: a.clone(),
            delta: 1,
            limit: None,
            window,
        })
        .unwrap();
        state.admit(&mut plan).await;
        assert!(matches!(plan.outcome(0), Outcome::Live(v) if &v[..] == b"rec"));
        assert!(plan.admitted());
        let mut dead = Admission::new();
        dead.push(Check::Live {
            record,
            index,
            member: "s-2".into(),
        })
        .unwrap();
        state.admit(&mut dead).await;
        assert_eq!(dead.outcome(0), &Outcome::Dead);
    }

    /// Cluster-wide `PUBLISH`: an instance subscribed through one node
    /// receives what an instance seeded with another node publishes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_cross_nodes() {
        let Some(url) = cluster_url() else { return };
        let seeds = seeds(&url);
        let first = connect(&seeds[0], Arc::new(SystemClock))
            .await
            .into_shared();
        let last = connect(&seeds[seeds.len() - 1], Arc::new(SystemClock))
            .await
            .into_shared();
        let topic = unique("topic");
        let mut sub = first.pubsub.subscribe(&topic).await.unwrap();
        last.pubsub
            .publish(&topic, Bytes::from_static(b"hello"))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("a message within 5 s")
            .unwrap();
        assert_eq!(&got[..], b"hello");
    }

    /// A cluster URL none of whose seeds answers stops the start with a
    /// clear error, also without `require_connection`; the password is
    /// never in it.
    #[tokio::test]
    async fn an_unreachable_cluster_stops_the_start() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("redis+cluster://:hunter2@127.0.0.1:{port}");
        let options = RedisOptions::default()
            .with_connection_timeout(Duration::from_millis(200))
            .with_response_timeout(Duration::from_millis(200));
        let started = Instant::now();
        let err = RedisState::connect(&url, Arc::new(SystemClock), options)
            .await
            .expect_err("no cluster there");
        assert!(matches!(err, StateError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("cluster"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(15));
        let braces = RedisOptions::default().with_key_prefix("app{1}:");
        assert!(matches!(
            RedisState::connect(&url, Arc::new(SystemClock), braces).await,
            Err(StateError::InvalidArgument(_))
        ));
    }

    /// Slow (`KAILASH_TEST_SLOW=1`, about 15 s): on a cluster of its own
    /// (`KAILASH_TEST_REDIS_CLUSTER_SCRIPT`), a primary is killed while
    /// requests run. Operations fail with `Unavailable` (never a panic or a
    /// hang) until a replica takes over, then succeed again by themselves,
    /// and what was written before is still there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_primary_is_replaced() {
        let Some(servers) = Servers::start("KAILASH_TEST_REDIS_CLUSTER_SCRIPT") else {
            return;
        };
        let options = RedisOptions::default()
            .with_key_prefix("kailash-test:")
            .with_connection_timeout(Duration::from_millis(250))
            .with_response_timeout(Duration::from_millis(250))
            .with_require_connection(true);
        let state: SharedState = RedisState::connect(&servers.url, Arc::new(SystemClock), options)
            .await
            .unwrap()
            .into_shared();
        let keys: Vec<StateKey> = (0..64).map(|i| unique(&format!("k{i}"))).collect();
        let (refused, recovered) = through_failover(&state, &servers, &keys, false).await;
        eprintln!("failover: {refused} refused reads, recovered after {recovered:?}");
    }
}

/// The same suite against a primary found through Redis Sentinel: set
/// `KAILASH_TEST_REDIS_SENTINEL_URL` (a `redis+sentinel://` URL;
/// `.ci/redis-sentinel/sentinel.sh start <dir>` prints one).
mod sentinel {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use kailash_core::clock::SystemClock;
    use kailash_core::state::conformance::Harness;
    use kailash_core::state::{Namespace, SharedState, StateError, StateKey};
    use kailash_redis::{RedisOptions, RedisState};

    use crate::throwaway::{Servers, through_failover};

    const NS: Namespace = Namespace::new("sentinel");

    fn sentinel_url() -> Option<String> {
        let url = std::env::var("KAILASH_TEST_REDIS_SENTINEL_URL").ok();
        if url.is_none() {
            eprintln!("skipped: KAILASH_TEST_REDIS_SENTINEL_URL is not set");
        }
        url
    }

    async fn sentinel_harness() -> Option<Harness> {
        crate::harness_from("KAILASH_TEST_REDIS_SENTINEL_URL").await
    }

    kailash_core::state_conformance_tests!(sentinel_harness);

    fn unique(name: &str) -> StateKey {
        crate::throwaway::unique(NS, name)
    }

    /// A master name no sentinel monitors, and sentinels none of which
    /// answers, stop the start with a clear error — also without
    /// `require_connection` — and never show the password.
    #[tokio::test]
    async fn a_wrong_master_or_no_sentinel_stops_the_start() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let options = RedisOptions::default()
            .with_connection_timeout(Duration::from_millis(200))
            .with_response_timeout(Duration::from_millis(200));
        let url = format!("redis+sentinel://:hunter2@127.0.0.1:{port}/kailash");
        let err = RedisState::connect(&url, Arc::new(SystemClock), options.clone())
            .await
            .expect_err("no sentinel there");
        assert!(matches!(err, StateError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("sentinel"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");

        let Some(url) = sentinel_url() else { return };
        let (base, _) = url.rsplit_once('/').unwrap();
        let wrong = format!("{base}/no-such-master");
        let err = RedisState::connect(&wrong, Arc::new(SystemClock), options)
            .await
            .expect_err("a master nobody monitors");
        assert!(matches!(err, StateError::InvalidArgument(_)), "{err}");
    }

    /// Slow (`KAILASH_TEST_SLOW=1`, about 15 s): on a Sentinel set of its
    /// own (`KAILASH_TEST_REDIS_SENTINEL_SCRIPT`), the primary is killed
    /// while requests run. Operations fail with `Unavailable` (never a panic
    /// or a hang) until the sentinels promote the replica, then succeed
    /// again on it by themselves — writes included — with what was written
    /// before still there, and a subscription made before receives again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_primary_is_replaced() {
        let Some(servers) = Servers::start("KAILASH_TEST_REDIS_SENTINEL_SCRIPT") else {
            return;
        };
        let options = RedisOptions::default()
            .with_key_prefix("kailash-test:")
            .with_connection_timeout(Duration::from_millis(250))
            .with_response_timeout(Duration::from_millis(250))
            .with_require_connection(true);
        let redis = RedisState::connect(&servers.url, Arc::new(SystemClock), options)
            .await
            .unwrap();
        let state: SharedState = redis.shared();
        let topic = unique("topic");
        let mut sub = state.pubsub.subscribe(&topic).await.unwrap();
        let keys: Vec<StateKey> = (0..16).map(|i| unique(&format!("k{i}"))).collect();
        let (refused, recovered) = through_failover(&state, &servers, &keys, true).await;
        eprintln!("sentinel failover: {refused} refused operations, recovered after {recovered:?}");
        // The subscription follows the new primary (its background task
        // reconnects with backoff of up to 5 s).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            state
                .pubsub
                .publish(&topic, Bytes::from_static(b"after"))
                .await
                .unwrap();
            match tokio::time::timeout(Duration::from_millis(500), sub.recv()).await {
                Ok(Ok(got)) => {
                    assert_eq!(&got[..], b"after");
                    break;
                }
                _ if Instant::now() < deadline => continue,
                other => panic!("no message after the failover: {other:?}"),
            }
        }
        assert!(redis.pubsub_reconnects() >= 1);
    }
}
