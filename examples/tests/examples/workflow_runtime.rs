//! `workflow_runtime`: runs under access control, node by node.

#[test]
fn runs_complete_or_are_refused_by_permission() {
    let ran = crate::run("workflow_runtime", &[], &[]);
    assert!(ran.ok, "{}\n{}", ran.stdout, ran.stderr);
    let line = |who: &str| {
        ran.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{who}: ")))
            .unwrap_or_else(|| panic!("no line for {who}: {}", ran.stdout))
            .to_owned()
    };
    assert_eq!(line("dave"), r#"dave: Completed {"x2":{"result":42.0}}"#);
    let erin = line("erin");
    assert!(
        erin.starts_with("erin: Refused") && erin.contains("x2"),
        "{erin}"
    );
    let mallory = line("mallory");
    assert!(
        mallory.starts_with("mallory: refused before the run"),
        "{mallory}"
    );
    assert!(ran.stdout.contains(" audit events"), "{}", ran.stdout);
}
