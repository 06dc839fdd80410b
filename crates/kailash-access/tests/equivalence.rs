//! The compiled closure tree agrees with the reference interpreter on
//! random well-typed conditions over random (possibly missing or wrongly
//! typed) attribute values.

use std::net::IpAddr;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kailash_access::condition::{Attributes, Context, Policy, Root, Schema, Type, interpret};
use kailash_core::context::{RequestContext, RequestIdGenerator};
use kailash_core::{AttributeValue, Principal};
use proptest::prelude::*;

fn schema() -> Schema {
    Schema::new()
        .attribute("user.n", Type::Number)
        .attribute("user.s", Type::String)
        .attribute("user.c", Type::Classification)
        .attribute("user.b", Type::Bool)
        .attribute("data.n", Type::Number)
        .attribute("data.s", Type::String)
        .attribute("data.c", Type::Classification)
        .attribute("data.l", Type::StringList)
        .allow_undeclared(Root::Data)
}

fn num_term() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("user.n".to_owned()),
        Just("data.n".to_owned()),
        Just("data.any".to_owned()),
        Just("current_time.hour".to_owned()),
        (-3i64..4).prop_map(|n| n.to_string()),
        Just("1.5".to_owned()),
    ]
}

fn str_term() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("user.s".to_owned()),
        Just("data.s".to_owned()),
        Just("data.any".to_owned()),
        Just("'a'".to_owned()),
        Just("\"b\"".to_owned()),
    ]
}

fn class_term() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("user.c".to_owned()),
        Just("data.c".to_owned()),
        Just("data.any".to_owned()),
        Just("'public'".to_owned()),
        Just("'secret'".to_owned()),
        Just("'internal'".to_owned()),
    ]
}

fn op() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("=="),
        Just("!="),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">=")
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        (num_term(), op(), num_term()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
        (str_term(), prop_oneof![Just("=="), Just("!=")], str_term())
            .prop_map(|(a, o, b)| format!("{a} {o} {b}")),
        (
            prop_oneof![Just("user.c"), Just("data.c")],
            op(),
            class_term()
        )
            .prop_map(|(a, o, b)| format!("{a} {o} {b}")),
        (
            str_term(),
            prop_oneof![
                Just("data.l"),
                Just("user.roles"),
                Just("['a', 'x']"),
                Just("data.any")
            ]
        )
            .prop_map(|(a, b)| format!("{a} IN {b}")),
        Just("user.b".to_owned()),
        Just("data.any".to_owned()),
        Just("request.client_ip IN CIDR ['10.0.0.0/8', 'fd00::/8']".to_owned()),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 32, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("NOT {c}")),
            inner.clone().prop_map(|c| format!("({c})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} OR {b}")),
        ]
    })
}

fn value() -> impl Strategy<Value = Option<AttributeValue>> {
    prop_oneof![
        Just(None),
        (-3i64..4).prop_map(|n| Some(AttributeValue::Int(n))),
        prop_oneof![Just(1.5f64), Just(-0.5), Just(f64::NAN)]
            .prop_map(|f| Some(AttributeValue::Float(f))),
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("x"),
            Just("public"),
            Just("internal"),
            Just("SECRET")
        ]
        .prop_map(|s| Some(AttributeValue::from(s))),
        any::<bool>().prop_map(|b| Some(AttributeValue::Bool(b))),
        Just(Some(AttributeValue::from(vec!["a", "b"]))),
    ]
}

const NAMES: [&str; 9] = ["n", "s", "c", "b", "dn", "ds", "dc", "dl", "dany"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn compiled_matches_interpreter(
        src in condition(),
        values in proptest::collection::vec(value(), NAMES.len()),
        ip in proptest::option::of(prop_oneof![Just("10.1.2.3"), Just("8.8.8.8"), Just("fd00::1")]),
        role in prop_oneof![Just("a"), Just("z")],
        secs in 0i64..200_000,
    ) {
        let compiled = Policy::compile(&src, &schema()).unwrap();
        let mut b = Principal::builder("p").role(role);
        let mut data = Attributes::new();
        for (name, v) in NAMES.iter().zip(values) {
            let Some(v) = v else { continue };
            match name.strip_prefix('d') {
                Some(rest) => {
                    data.insert(rest.to_owned(), v);
                }
                None => b = b.attribute(*name, v),
            }
        }
        let p = b.build();
        let now = Timestamp::from_second(secs).unwrap();
        let tz = TimeZone::UTC;
        let ctx = match ip {
            Some(ip) => {
                let ip: IpAddr = ip.parse().unwrap();
                let req = RequestContext::new(RequestIdGenerator::new().next_id(), ip, now);
                Context::for_request(&p, &data, &req, &tz)
            }
            None => Context::new(&p, &data, now, &tz),
        };
        let fast = compiled.evaluate(&ctx);
        let slow = interpret(compiled.ast(), &ctx);
        prop_assert_eq!(&fast, &slow, "{}", src);
        prop_assert_eq!(fast.reason.is_none(), fast.allowed);
    }
}

fn token() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "user.c",
        "data.n",
        "data.any",
        "user.roles",
        "request.client_ip",
        "current_time.hour",
        "==",
        "!=",
        "<",
        ">=",
        "IN",
        "CIDR",
        "NOT",
        "AND",
        "OR",
        "(",
        ")",
        "[",
        "]",
        ",",
        "'a'",
        "'10.0.0.0/8'",
        "'secret'",
        "3",
        "-1.5",
        "true",
        "\"",
        "'",
        ".",
        "foo",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn arbitrary_input_never_panics(
        noise in "\\PC{0,120}",
        tokens in proptest::collection::vec(token(), 0..40),
    ) {
        let p = Principal::builder("p").attribute("c", "secret").build();
        let data = Attributes::new();
        let ctx = Context::new(&p, &data, Timestamp::UNIX_EPOCH, &TimeZone::UTC);
        for src in [noise, tokens.join(" ")] {
            if let Ok(c) = Policy::compile(&src, &schema()) {
                prop_assert_eq!(c.evaluate(&ctx), interpret(c.ast(), &ctx));
            }
        }
    }
}
