//! Replays the `workflow_definition` fuzz corpus
//! (`fuzz/corpus/workflow_definition/`) on stable through the fuzz target's
//! own harness: no input panics, every `seed_*` is accepted and every
//! `bad_*` refused.

#[path = "fuzz_harness/workflow_definition.rs"]
mod harness;

#[test]
fn replay_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/workflow_definition");
    let mut files = 0;
    let mut accepted = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| harness::run(&bytes))
            .unwrap_or_else(|_| panic!("panicked on {}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seed_") {
            assert!(ok, "seed {name} should be accepted");
        } else if name.starts_with("bad_") {
            assert!(!ok, "{name} should be refused");
        }
        files += 1;
        accepted += usize::from(ok);
    }
    assert!(files >= 8, "corpus has {files} files");
    assert!(accepted >= 2);
    assert_eq!(
        (harness::MAX_NODES, harness::ALLOWED),
        (4, ["transform", "llm"])
    );
}
