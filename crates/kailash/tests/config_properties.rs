//! No configuration text or environment value makes loading panic, and
//! durations round-trip through their display form.

use std::time::Duration;

use kailash::config::{ConfigDuration, GatewayConfig, parse_duration};
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_text_is_an_error_or_a_config(text in "\\PC{0,200}") {
        let _ = GatewayConfig::from_toml_str(&text, "fuzz.toml");
    }

    #[test]
    fn arbitrary_overrides_are_an_error_or_a_config(
        key in "[A-Z_]{1,12}(__[A-Z_]{1,12}){0,2}",
        value in "\\PC{0,40}",
    ) {
        let vars = vec![(format!("KAILASH_{key}"), value)];
        let _ = GatewayConfig::from_toml_with_env("", "fuzz.toml", vars);
    }

    #[test]
    fn durations_round_trip(ms in 0u64..10_000_000_000) {
        let d = Duration::from_millis(ms);
        prop_assert_eq!(parse_duration(&ConfigDuration(d).to_string()), Ok(d));
    }

    #[test]
    fn duration_parsing_never_panics(text in "\\PC{0,30}") {
        let _ = parse_duration(&text);
    }
}
