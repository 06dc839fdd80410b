//! `realtime_broadcast`: an announcement reaches its tenant's streams only.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Example, support};

/// An open `GET /events` stream of `token`'s user.
async fn events(addr: SocketAddr, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head =
        format!("GET /events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads `stream` until `needle` appears (or panics after 10 s); all it read.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&seen)))
            .unwrap();
        assert!(n > 0, "stream closed: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

async fn announce(addr: SocketAddr, token: &str, text: &str) -> support::Resp {
    let head = format!(
        "POST /announce HTTP/1.1\nHost: localhost\nAuthorization: Bearer {token}\nContent-Type: text/plain\nContent-Length: {}",
        text.len()
    );
    support::request(addr, &head, text.as_bytes()).await
}

#[tokio::test]
async fn announcements_stay_in_their_tenant() {
    let ex = Example::start("realtime_broadcast", &["127.0.0.1:0"], &[]);
    let (alice, carol) = (ex.token("alice"), ex.token("carol"));
    announce(ex.addr, "forged", "x").await.assert_problem(401);
    crate::get(ex.addr, "/events", None, "")
        .await
        .assert_problem(401);

    let mut acme = events(ex.addr, &alice).await;
    let mut globex = events(ex.addr, &carol).await;
    // Both streams are open (200, event-stream) before anything is sent.
    read_until(&mut acme, "text/event-stream").await;
    read_until(&mut globex, "text/event-stream").await;

    let res = announce(ex.addr, &alice, "deploy at 5").await;
    assert_eq!(res.status, 202, "{}", res.text());
    let seen = read_until(&mut acme, "deploy at 5").await;
    assert!(seen.contains(r#""tenant_id":"acme""#), "{seen}");

    // carol's stream gets globex's announcement and never acme's.
    assert_eq!(announce(ex.addr, &carol, "globex only").await.status, 202);
    let seen = read_until(&mut globex, "globex only").await;
    assert!(
        !seen.contains("deploy at 5"),
        "acme's event crossed tenants: {seen}"
    );
}
