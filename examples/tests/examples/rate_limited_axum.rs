//! `rate_limited_axum`: one layer in a plain axum app.

use crate::{Example, get};

#[tokio::test]
async fn the_sixth_call_in_a_minute_is_refused() {
    let ex = Example::start("rate_limited_axum", &["127.0.0.1:0"], &[]);
    for _ in 0..5 {
        let res = get(ex.addr, "/", None, "").await;
        assert_eq!((res.status, res.text().as_str()), (200, "hello\n"));
    }
    let res = get(ex.addr, "/", None, "").await;
    res.assert_problem(429);
    assert!(res.header("retry-after").is_some(), "{res:?}");
}
