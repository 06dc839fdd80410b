//! Behaviour of the ABAC condition language.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::{self, TimeZone};
use kailash_access::condition::{
    Attributes, ConditionError, Context, ErrorKind, Policy, Root, Schema, Type, interpret,
};
use kailash_core::context::{RequestContext, RequestIdGenerator};
use kailash_core::{AttributeValue, Principal};

const DEPT: &str = "user.department == data.department AND user.clearance >= data.classification";
const HOURS: &str =
    "current_time.hour >= 9 AND current_time.hour <= 17 AND current_time.weekday < 5";
const GEO: &str = "user.location.country IN ['US', 'CA', 'GB']";

fn schema() -> Schema {
    Schema::new()
        .attribute("user.department", Type::String)
        .attribute("user.clearance", Type::Classification)
        .attribute("user.location.country", Type::String)
        .attribute("user.active", Type::Bool)
        .attribute("user.level", Type::Number)
        .attribute("data.department", Type::String)
        .attribute("data.classification", Type::Classification)
        .attribute("data.size", Type::Number)
        .attribute("data.owner", Type::String)
        .attribute("data.tags", Type::StringList)
}

fn user(name: &str, dept: &str, clearance: &str, country: &str) -> Principal {
    let mut loc = BTreeMap::new();
    loc.insert("country".to_owned(), AttributeValue::from(country));
    Principal::builder(name)
        .role("reader")
        .attribute("department", dept)
        .attribute("clearance", clearance)
        .attribute("location", loc)
        .attribute("active", true)
        .attribute("level", 3i64)
        .build()
}

fn dave() -> Principal {
    user("dave", "engineering", "confidential", "GB")
}

fn frank() -> Principal {
    user("frank", "engineering", "secret", "FR")
}

fn doc(dept: &str, class: &str) -> Attributes {
    let mut d = Attributes::new();
    d.insert("department".into(), dept.into());
    d.insert("classification".into(), class.into());
    d.insert("size".into(), AttributeValue::Int(10));
    d.insert("owner".into(), "dave".into());
    d.insert("tags".into(), vec!["a", "b"].into());
    d
}

fn tz() -> TimeZone {
    TimeZone::fixed(tz::offset(5))
}

/// 2026-11-23 is a Monday; 2026-11-28 a Saturday.
fn local(day: i8, h: i8, m: i8) -> Timestamp {
    tz().to_timestamp(date(2026, 11, day).at(h, m, 0, 0))
        .unwrap()
}

fn allows(src: &str, p: &Principal, data: &Attributes) -> bool {
    let c = Policy::compile(src, &schema()).unwrap();
    let ctx = Context::new(p, data, local(23, 12, 0), &tz());
    let d = c.evaluate(&ctx);
    assert_eq!(d.allowed, interpret(c.ast(), &ctx).allowed, "{src}");
    assert_eq!(d.reason.is_none(), d.allowed);
    d.allowed
}

fn err(src: &str) -> ConditionError {
    Policy::compile(src, &schema()).unwrap_err()
}

#[test]
fn department_and_clearance() {
    assert!(allows(DEPT, &dave(), &doc("engineering", "confidential")));
    assert!(allows(DEPT, &dave(), &doc("engineering", "internal")));
    assert!(!allows(DEPT, &dave(), &doc("engineering", "secret")));
    assert!(!allows(DEPT, &dave(), &doc("sales", "public")));
    assert!(allows(DEPT, &frank(), &doc("engineering", "secret")));
}

#[test]
fn geo() {
    let d = doc("engineering", "public");
    assert!(allows(GEO, &dave(), &d));
    assert!(!allows(GEO, &frank(), &d));
}

#[test]
fn business_hours() {
    let c = Policy::compile(HOURS, &schema()).unwrap();
    let (p, d) = (dave(), doc("x", "public"));
    let at = |day, h, m| {
        c.evaluate(&Context::new(&p, &d, local(day, h, m), &tz()))
            .allowed
    };
    assert!(!at(23, 8, 59));
    assert!(at(23, 9, 0));
    assert!(at(23, 17, 0));
    assert!(at(23, 17, 59));
    assert!(!at(23, 18, 0));
    assert!(at(27, 12, 0)); // Friday
    assert!(!at(28, 12, 0)); // Saturday
    assert!(!at(29, 12, 0)); // Sunday
    // The same instant in UTC is 07:00, before hours.
    let utc = Context::new(&p, &d, local(23, 12, 0), &TimeZone::UTC);
    assert!(!c.evaluate(&utc).allowed);
}

#[test]
fn time_fields() {
    let (p, d) = (dave(), doc("x", "public"));
    let ctx = Context::new(&p, &d, local(28, 18, 7), &tz());
    for src in [
        "current_time.hour == 18",
        "current_time.minute == 7",
        "current_time.weekday == 5",
        "current_time.day == 28",
        "current_time.month == 11",
        "current_time.year == 2026",
    ] {
        assert!(
            Policy::compile(src, &schema())
                .unwrap()
                .evaluate(&ctx)
                .allowed,
            "{src}"
        );
    }
}

#[test]
fn every_operator() {
    let (p, d) = (dave(), doc("engineering", "internal"));
    let yes = [
        "data.size == 10",
        "data.size != 11",
        "data.size < 11",
        "data.size <= 10",
        "data.size > 9",
        "data.size >= 10",
        "data.size >= 9.5",
        "data.size < 10.5",
        "data.owner == 'dave'",
        "data.owner != \"eve\"",
        "data.owner IN ['eve', 'dave']",
        "'reader' IN user.roles",
        "'a' IN data.tags",
        "user.subject == 'dave'",
        "user.active",
        "user.active == true",
        "NOT (user.active == false)",
        "user.clearance > data.classification",
        "user.clearance >= 'internal'",
        "'secret' > user.clearance",
        "user.clearance == 'confidential'",
        "user.clearance != 'secret'",
        "user.clearance IN ['confidential']",
        "data.classification < 'confidential'",
        "data.classification <= 'internal'",
        "user.level == 3",
        "-1 < 0",
    ];
    for src in yes {
        assert!(allows(src, &p, &d), "{src}");
    }
    let no = [
        "data.size == 11",
        "data.size != 10",
        "data.size < 10",
        "data.size > 10",
        "data.owner IN []",
        "'admin' IN user.roles",
        "user.clearance < 'internal'",
        "NOT user.active",
    ];
    for src in no {
        assert!(!allows(src, &p, &d), "{src}");
    }
}

#[test]
fn precedence() {
    let (p, d) = (dave(), doc("x", "public"));
    // OR binds looser than AND: true OR (false AND false).
    assert!(allows("1 == 1 OR 1 == 2 AND 1 == 2", &p, &d));
    // (false AND false) OR true
    assert!(allows("1 == 2 AND 1 == 2 OR 1 == 1", &p, &d));
    // NOT binds tighter than AND: (NOT false) AND true.
    assert!(allows("NOT 1 == 2 AND 1 == 1", &p, &d));
    // NOT binds tighter than OR: (NOT true) OR true.
    assert!(allows("NOT 1 == 1 OR 1 == 1", &p, &d));
    assert!(!allows("NOT (1 == 1 OR 1 == 1)", &p, &d));
    assert!(allows("NOT NOT 1 == 1", &p, &d));
    // Case-insensitive keywords.
    assert!(allows("not 1 == 2 and (1 == 2 or TRUE)", &p, &d));
}

#[test]
fn missing_attribute_denies() {
    let p = Principal::builder("nobody").build();
    let d = Attributes::new();
    let c = Policy::compile(DEPT, &schema()).unwrap();
    let dec = c.evaluate(&Context::new(&p, &d, local(23, 12, 0), &tz()));
    assert!(!dec.allowed);
    assert!(
        dec.reason
            .unwrap()
            .contains("missing attribute `user.department`")
    );
    // Even under NOT or on the left of OR.
    for src in [
        "NOT user.department == 'x'",
        "user.department == 'x' OR 1 == 1",
    ] {
        let c = Policy::compile(src, &schema()).unwrap();
        let dec = c.evaluate(&Context::new(&p, &d, local(23, 12, 0), &tz()));
        assert!(!dec.allowed, "{src}");
        assert!(dec.reason.unwrap().contains("missing"), "{src}");
    }
    // No client ip without a request context.
    let c = Policy::compile("request.client_ip IN CIDR '0.0.0.0/0'", &schema()).unwrap();
    assert!(
        !c.evaluate(&Context::new(&p, &d, local(23, 12, 0), &tz()))
            .allowed
    );
}

#[test]
fn runtime_type_mismatch_denies() {
    let p = Principal::builder("x")
        .attribute("clearance", "topsecret")
        .attribute("department", 5i64)
        .build();
    let d = doc("engineering", "public");
    let ctx = Context::new(&p, &d, local(23, 12, 0), &tz());
    for src in [
        "user.clearance >= data.classification",
        "user.department == data.department",
        "user.department != data.department",
    ] {
        let dec = Policy::compile(src, &schema()).unwrap().evaluate(&ctx);
        assert!(!dec.allowed, "{src}");
        assert!(dec.reason.is_some());
    }
    let open = Schema::new().allow_undeclared(Root::Data);
    let dec = Policy::compile("data.owner > 3", &open)
        .unwrap()
        .evaluate(&ctx);
    assert!(!dec.allowed);
    assert!(dec.reason.unwrap().contains("type mismatch"));
}

#[test]
fn parse_error_positions() {
    let e = err("user.department == 'eng");
    assert_eq!(e.kind(), ErrorKind::UnterminatedString);
    assert_eq!((e.offset(), e.line(), e.column()), (19, 1, 20));

    let e = err("user.department ==\n  == 'x'");
    assert_eq!(e.kind(), ErrorKind::UnexpectedToken);
    assert_eq!((e.offset(), e.line(), e.column()), (21, 2, 3));
    assert!(e.to_string().starts_with("2:3"), "{e}");

    let e = err("(1 == 1");
    assert_eq!(e.kind(), ErrorKind::UnexpectedToken);
    assert_eq!(e.offset(), 7);

    let e = err("1 == 1 1");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::UnexpectedToken, 7));

    let e = err("user.x # 1");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::InvalidCharacter, 7));

    let e = err("'a\\n' == 'a'");
    assert_eq!(e.kind(), ErrorKind::InvalidCharacter);

    let e = err("data.size == 99999999999999999999");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::InvalidLiteral, 13));

    assert_eq!(err("").kind(), ErrorKind::UnexpectedToken);
    assert_eq!(err("user.").kind(), ErrorKind::UnexpectedToken);
    assert_eq!(err("AND").kind(), ErrorKind::UnexpectedToken);
    assert_eq!(err("[1]").kind(), ErrorKind::UnexpectedToken);
}

#[test]
fn escapes() {
    let (p, mut d) = (dave(), doc("x", "public"));
    d.insert("owner".into(), "it's \"q\" \\".into());
    assert!(allows(r#"data.owner == 'it\'s "q" \\'"#, &p, &d));
    assert!(allows(r#"data.owner == "it's \"q\" \\""#, &p, &d));
}

#[test]
fn type_errors_at_load() {
    let e = err("foo.x == 1");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::UnknownRoot, 0));
    assert!(e.message().contains("`foo`"));

    let e = err("user.nope == 1");
    assert_eq!(e.kind(), ErrorKind::UnknownAttribute);
    assert_eq!(
        err("current_time.second == 1").kind(),
        ErrorKind::UnknownAttribute
    );
    assert_eq!(
        err("request.path == 'x'").kind(),
        ErrorKind::UnknownAttribute
    );

    let e = err("data.owner >= data.size");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::TypeMismatch, 11));
    assert!(e.message().contains("string >= number"), "{}", e.message());

    assert_eq!(err("data.owner < 'x'").kind(), ErrorKind::NotOrderable);
    assert_eq!(err("user.active < true").kind(), ErrorKind::NotOrderable);
    assert_eq!(
        err("data.tags == data.tags").kind(),
        ErrorKind::TypeMismatch
    );
    assert_eq!(err("data.size IN ['1']").kind(), ErrorKind::TypeMismatch);
    assert_eq!(err("data.size").kind(), ErrorKind::TypeMismatch);
    assert_eq!(
        err("data.owner == user.clearance").kind(),
        ErrorKind::TypeMismatch
    );
    assert_eq!(
        err("user.clearance >= 'top'").kind(),
        ErrorKind::InvalidLiteral
    );
    assert_eq!(
        err("data.owner IN CIDR '10.0.0.0/8'").kind(),
        ErrorKind::TypeMismatch
    );
    let e = err("request.client_ip IN CIDR '10.0.0.0/33'");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::InvalidLiteral, 26));
    assert_eq!(
        err("request.client_ip == 'nope'").kind(),
        ErrorKind::InvalidLiteral
    );

    // Undeclared attributes are `any` when the root is open.
    let open = Schema::new().allow_undeclared(Root::User);
    assert!(Policy::compile("user.whatever >= 3", &open).is_ok());
    assert_eq!(
        Policy::compile("data.whatever == 3", &open)
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownAttribute
    );
}

#[test]
fn limits() {
    let deep = format!("{}1 == 1{}", "(".repeat(65), ")".repeat(65));
    assert_eq!(err(&deep).kind(), ErrorKind::TooDeep);
    let ok = format!("{}1 == 1{}", "(".repeat(64), ")".repeat(64));
    assert!(Policy::compile(&ok, &schema()).is_ok());
    assert_eq!(err(&"NOT ".repeat(100)).kind(), ErrorKind::TooDeep);
    assert_eq!(err(&"(".repeat(100_000)).kind(), ErrorKind::TooLong);
    let long = format!("1 == 1{}", " OR 1 == 1".repeat(500));
    assert_eq!(err(&long).kind(), ErrorKind::TooLong);
    // A long flat chain within the limit is fine (AND/OR are n-ary).
    let chain = format!("1 == 1{}", " AND 1 == 1".repeat(300));
    assert!(allows(&chain, &dave(), &doc("x", "public")));
}

fn request(ip: &str) -> RequestContext {
    let ip: IpAddr = ip.parse().unwrap();
    RequestContext::new(RequestIdGenerator::new().next_id(), ip, local(23, 12, 0))
}

#[test]
fn cidr_v4_and_v6() {
    let c = Policy::compile(
        "request.client_ip IN CIDR ['10.0.0.0/8', '2001:db8::/32']",
        &schema(),
    )
    .unwrap();
    let single = Policy::compile("request.client_ip IN CIDR '192.168.1.0/24'", &schema()).unwrap();
    let eq = Policy::compile("request.client_ip == '::1'", &schema()).unwrap();
    let (p, d) = (dave(), doc("x", "public"));
    let check = |c: &kailash_access::condition::CompiledCondition, ip: &str| {
        let ctx = Context::for_request(&p, &d, &request(ip), &tz());
        let dec = c.evaluate(&ctx);
        assert_eq!(dec.allowed, interpret(c.ast(), &ctx).allowed);
        dec.allowed
    };
    assert!(check(&c, "10.1.2.3"));
    assert!(check(&c, "10.255.255.255"));
    assert!(!check(&c, "11.0.0.1"));
    assert!(check(&c, "2001:db8::1"));
    assert!(check(&c, "2001:db8:ffff::1"));
    assert!(!check(&c, "2001:db9::1"));
    assert!(!check(&c, "::ffff:10.0.0.1"));
    assert!(check(&single, "192.168.1.77"));
    assert!(!check(&single, "192.168.2.1"));
    assert!(check(&eq, "::1"));
    assert!(!check(&eq, "127.0.0.1"));
    // The request time feeds current_time.
    let hours = Policy::compile(HOURS, &schema()).unwrap();
    assert!(check(&hours, "10.0.0.1"));
}

#[test]
#[ignore = "timing print; run with --ignored --nocapture in release"]
fn timing() {
    let (p, d) = (dave(), doc("engineering", "confidential"));
    let ctx = Context::new(&p, &d, local(23, 12, 0), &tz());
    for src in [DEPT, HOURS, GEO] {
        let c = Policy::compile(src, &schema()).unwrap();
        let n = 200_000u32;
        let start = std::time::Instant::now();
        let mut allowed = 0u32;
        for _ in 0..n {
            allowed += u32::from(std::hint::black_box(&c).evaluate(&ctx).allowed);
        }
        println!("{src}: {:?}/eval ({allowed} allowed)", start.elapsed() / n);
    }
}
