//! `redis_rate_limit`: two processes, one limit, kept in Redis.

use crate::{Example, get, support};

#[tokio::test]
async fn two_processes_share_one_limit() {
    let Ok(url) = std::env::var("KAILASH_TEST_REDIS_URL") else {
        eprintln!("skipped: KAILASH_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("kailash-example-{}:", support::unique_suffix());
    let env = [
        ("KAILASH_REDIS_URL", url.as_str()),
        ("KAILASH_REDIS_PREFIX", prefix.as_str()),
    ];
    let one = Example::start("redis_rate_limit", &["127.0.0.1:0"], &env);
    let two = Example::start("redis_rate_limit", &["127.0.0.1:0"], &env);
    // 5 a minute per client IP, counted across both instances.
    for addr in [one.addr, two.addr, one.addr, two.addr, one.addr] {
        let res = get(addr, "/", None, "").await;
        assert_eq!((res.status, res.text().as_str()), (200, "hello\n"));
    }
    let res = get(two.addr, "/", None, "").await;
    res.assert_problem(429);
    assert!(res.header("retry-after").is_some(), "{res:?}");
    get(one.addr, "/", None, "").await.assert_problem(429);
}

#[test]
fn without_redis_it_says_what_to_set() {
    let ran = crate::run(
        "redis_rate_limit",
        &["127.0.0.1:0"],
        &[("KAILASH_REDIS_URL", "")],
    );
    assert!(!ran.ok);
    assert!(
        ran.stderr.contains("set KAILASH_REDIS_URL"),
        "{}",
        ran.stderr
    );
    // A URL that is no Redis URL is named as the culprit (never echoed).
    let ran = crate::run(
        "redis_rate_limit",
        &["127.0.0.1:0"],
        &[("KAILASH_REDIS_URL", "http://x")],
    );
    assert!(!ran.ok);
    assert!(
        ran.stderr.contains("Redis at KAILASH_REDIS_URL"),
        "{}",
        ran.stderr
    );
}
