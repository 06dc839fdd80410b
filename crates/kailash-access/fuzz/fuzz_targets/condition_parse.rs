//! Parse → compile → evaluate arbitrary condition text; nothing may panic.
#![no_main]

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kailash_access::condition::{Attributes, Context, Policy, Root, Schema, Type, interpret};
use kailash_core::{AttributeValue, Principal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(src) = std::str::from_utf8(bytes) else {
        return;
    };
    let schema = Schema::new()
        .attribute("user.department", Type::String)
        .attribute("user.clearance", Type::Classification)
        .attribute("user.location.country", Type::String)
        .attribute("data.department", Type::String)
        .attribute("data.classification", Type::Classification)
        .allow_undeclared(Root::Data);
    let Ok(compiled) = Policy::compile(src, &schema) else {
        return;
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
});
