//! `access_policy`: RBAC per route and ABAC on the loaded document.

use crate::{Example, get};

#[tokio::test]
async fn roles_and_conditions_from_the_policy_file() {
    let ex = Example::start("access_policy", &["127.0.0.1:0"], &[]);
    let (dave, bob) = (ex.token("dave"), ex.token("bob"));

    get(ex.addr, "/reports", None, "").await.assert_problem(401);
    let res = get(ex.addr, "/reports", Some(&bob), "").await;
    assert_eq!((res.status, res.text().as_str()), (200, "reports\n"));

    // RBAC: a business_user holds no data:read.
    let problem = get(ex.addr, "/docs/eng-plan", Some(&bob), "")
        .await
        .assert_problem(403);
    assert_eq!(problem["permission"], "data:read");

    // ABAC: same department, clearance confidential >= confidential ...
    let res = get(ex.addr, "/docs/eng-plan", Some(&dave), "").await;
    assert_eq!(
        (res.status, res.text().as_str()),
        (200, "eng-plan: confidential\n")
    );
    // ... but not >= secret.
    let problem = get(ex.addr, "/docs/eng-keys", Some(&dave), "")
        .await
        .assert_problem(403);
    assert_eq!(problem["permission"], "data:read");
    get(ex.addr, "/docs/nothing", Some(&dave), "")
        .await
        .assert_problem(404);
}
