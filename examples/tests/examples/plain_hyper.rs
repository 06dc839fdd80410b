//! `plain_hyper`: the layers on hyper 1 without axum.

use crate::{Example, get};

#[tokio::test]
async fn layers_guard_a_plain_hyper_service() {
    let ex = Example::start("plain_hyper", &["127.0.0.1:0"], &[]);
    let (alice, bob) = (ex.token("alice"), ex.token("bob"));

    let res = get(ex.addr, "/reports", None, "").await;
    res.assert_problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    get(ex.addr, "/reports", Some("not-a-jwt"), "")
        .await
        .assert_problem(401);

    let res = get(ex.addr, "/reports", Some(&bob), "").await;
    let problem = res.assert_problem(403);
    assert_eq!(problem["permission"], "report:view");

    // acme may make 3 calls a day; the refused ones above were not charged.
    for _ in 0..3 {
        let res = get(ex.addr, "/reports", Some(&alice), "").await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.text(), "reports of acme for alice\n");
    }
    let res = get(ex.addr, "/reports", Some(&alice), "").await;
    res.assert_problem(429);
    assert!(res.header("retry-after").is_some(), "{res:?}");
}

#[test]
fn a_bad_listen_address_is_a_clear_error() {
    let ran = crate::run("plain_hyper", &["localhost"], &[]);
    assert!(!ran.ok, "an unparsable address must fail");
    assert!(ran.stderr.contains("listen address"), "{}", ran.stderr);
}
