//! Replays the fuzz corpus (`fuzz/corpus/condition_parse/`) through the same
//! parse → compile → evaluate path as the fuzz target, on stable.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kailash_access::condition::{Attributes, Context, Policy, Root, Schema, Type, interpret};
use kailash_core::{AttributeValue, Principal};

/// Mirrors `fuzz/fuzz_targets/condition_parse.rs`; returns whether the
/// input compiled.
fn run(bytes: &[u8]) -> bool {
    let Ok(src) = std::str::from_utf8(bytes) else {
        return false;
    };
    let schema = Schema::new()
        .attribute("user.department", Type::String)
        .attribute("user.clearance", Type::Classification)
        .attribute("user.location.country", Type::String)
        .attribute("data.department", Type::String)
        .attribute("data.classification", Type::Classification)
        .allow_undeclared(Root::Data);
    let Ok(compiled) = Policy::compile(src, &schema) else {
        return false;
    };
    let mut loc = BTreeMap::new();
    loc.insert("country".to_owned(), AttributeValue::from("GB"));
    let dave = Principal::builder("dave")
        .role("reader")
        .attribute("department", "engineering")
        .attribute("clearance", "confidential")
        .attribute("location", loc)
        .build();
    let mut data = Attributes::new();
    data.insert("department".into(), "engineering".into());
    data.insert("classification".into(), "confidential".into());
    data.insert("size".into(), AttributeValue::Int(7));
    let ctx = Context::new(&dave, &data, Timestamp::UNIX_EPOCH, &TimeZone::UTC);
    let fast = compiled.evaluate(&ctx);
    let slow = interpret(compiled.ast(), &ctx);
    assert_eq!(fast, slow, "{src}");
    true
}

#[test]
fn replay_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/condition_parse");
    let mut files = 0;
    let mut compiled = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| run(&bytes))
            .unwrap_or_else(|_| panic!("panicked on {}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seed_") {
            assert!(ok, "seed {name} should compile");
        } else if name.starts_with("bad_") {
            assert!(!ok, "{name} should be refused");
        }
        files += 1;
        compiled += usize::from(ok);
    }
    assert!(files >= 10, "corpus has {files} files");
    assert!(compiled >= 3);
}
