//! Decoding the replies of scripts and commands.
//!
//! Anything the scripts never produce is [`unexpected`] (a backend error);
//! stored data that cannot be read is `Corrupt`.

use kailash_core::state::StateError;
use redis::Value;

use crate::error;

/// An integer reply, given as an integer or as a decimal string.
pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// An optional integer: nil or the empty string mean none.
pub(crate) fn as_opt_i64(value: &Value) -> Option<Option<i64>> {
    match value {
        Value::Nil => Some(None),
        Value::BulkString(b) if b.is_empty() => Some(None),
        other => as_i64(other).map(Some),
    }
}

/// A `0`/`1` flag.
pub(crate) fn as_bool(value: &Value) -> Result<bool, StateError> {
    match as_i64(value) {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(unexpected()),
    }
}

/// A list reply; nil is the empty list.
pub(crate) fn as_array(value: Value) -> Result<Vec<Value>, StateError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(unexpected()),
    }
}

/// A set member.
pub(crate) fn as_string(value: Value) -> Result<String, StateError> {
    match value {
        Value::BulkString(b) => {
            String::from_utf8(b).map_err(|_| error::corrupt("set member is not UTF-8"))
        }
        Value::SimpleString(s) => Ok(s),
        _ => Err(unexpected()),
    }
}

/// A reply shape the scripts never produce.
pub(crate) fn unexpected() -> StateError {
    StateError::Backend("redis: unexpected reply shape".to_owned())
}

/// A score or deadline in milliseconds stored as a decimal (possibly with a fraction).
pub(crate) fn parse_ms(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?;
    s.parse::<i64>().ok().or_else(|| {
        let f = s.parse::<f64>().ok()?;
        // Scores are whole milliseconds well inside f64's exact range.
        f.is_finite().then_some(f as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_decode_or_report_corruption() {
        assert_eq!(as_i64(&Value::Int(7)), Some(7));
        assert_eq!(as_i64(&Value::BulkString(b"-12".to_vec())), Some(-12));
        assert_eq!(as_i64(&Value::BulkString(b"x".to_vec())), None);
        assert_eq!(as_opt_i64(&Value::BulkString(Vec::new())), Some(None));
        assert_eq!(as_opt_i64(&Value::Nil), Some(None));
        assert_eq!(parse_ms(b"1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_ms(b"1.7e12"), Some(1_700_000_000_000));
        assert_eq!(parse_ms(b"soon"), None);
        assert!(as_bool(&Value::Int(2)).is_err());
    }
}
