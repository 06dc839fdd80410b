//! `tenant_subdomain`: the tenant from the host, and its daily quota.

use crate::{Example, support};

async fn on_host(addr: std::net::SocketAddr, host: &str) -> support::Resp {
    support::request(addr, &format!("GET / HTTP/1.1\nHost: {host}"), b"").await
}

#[tokio::test]
async fn subdomains_name_tenants_and_quotas_are_per_tenant() {
    let ex = Example::start("tenant_subdomain", &["127.0.0.1:0"], &[]);
    for _ in 0..3 {
        let res = on_host(ex.addr, "acme.example.test").await;
        assert_eq!(
            (res.status, res.text().as_str()),
            (200, "hello Acme Corp\n")
        );
    }
    let res = on_host(ex.addr, "acme.example.test").await;
    let problem = res.assert_problem(429);
    assert!(res.header("retry-after").is_some(), "{res:?}");
    assert!(problem.get("quota").is_some(), "{problem}");

    // acme's quota is acme's: globex still answers.
    let res = on_host(ex.addr, "globex.example.test:8080").await;
    assert_eq!((res.status, res.text().as_str()), (200, "hello Globex\n"));

    on_host(ex.addr, "initech.example.test")
        .await
        .assert_problem(403);
    on_host(ex.addr, "nobody.example.test")
        .await
        .assert_problem(403);
    // No tenant named at all, and the public path that needs none.
    on_host(ex.addr, "example.test").await.assert_problem(400);
    let res = support::request(ex.addr, "GET /health HTTP/1.1\nHost: localhost", b"").await;
    assert_eq!(res.status, 200);
}
