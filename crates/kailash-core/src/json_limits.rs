//! Limits on the shape of a JSON body, checked on its bytes before
//! anything is deserialised: nesting depth, string length, array length,
//! object size and the length of a number's text.
//!
//! A body limit bounds the bytes; these bound what the bytes can make a
//! parser do. 1 MiB of `[[[[…` is a stack 500 000 frames deep, of `[1,1,…`
//! half a million values; one string can be the whole megabyte. [`JsonLimits::check`]
//! walks the bytes once, without allocating (but for a stack as deep as
//! the depth limit), and names the first value over a limit by its RFC 6901
//! JSON pointer, so a client learns where — never what — its body was
//! refused. It does not judge syntax: text that is not JSON passes here and
//! is refused by the parser after it.
//!
//! kailash's schema-enforcing extractor (`ValidJson`, feature `openapi`)
//! checks every body against the `JsonLimits` in the request's extensions,
//! or the defaults.
//!
//! ```
//! use kailash_core::json_limits::{JsonLimits, Exceeded};
//!
//! let limits = JsonLimits { max_depth: 3, ..JsonLimits::default() };
//! assert!(limits.check(br#"{"a": [1, {"b": 2}]}"#).is_ok());
//! let refused = limits.check(br#"{"a": [1, {"b": [3]}]}"#).unwrap_err();
//! assert_eq!(refused.pointer, "/a/1/b");
//! assert_eq!(refused.exceeded, Exceeded::Depth);
//! let long = JsonLimits { max_string_bytes: 5, ..JsonLimits::default() };
//! assert_eq!(long.check(br#"{"x~y/z": ["ok", "too long"]}"#).unwrap_err().pointer, "/x~0y~1z/1");
//! ```

use serde::{Deserialize, Serialize};

/// The limits. Each is inclusive: a value exactly at the limit passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonLimits {
    /// How deep arrays and objects nest (the top-level value is depth 1).
    pub max_depth: usize,
    /// The most bytes of one string (member names included), as written
    /// between its quotes.
    pub max_string_bytes: usize,
    /// The most items of one array.
    pub max_array_items: usize,
    /// The most members of one object.
    pub max_object_members: usize,
    /// The most characters of one number (`-1.5e10` is 7).
    pub max_number_chars: usize,
}

impl Default for JsonLimits {
    /// Depth 32, strings of 64 KiB, 10 000 array items, 1 000 object
    /// members, numbers of 64 characters: far beyond any request of the
    /// built-in APIs, far below what hurts.
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_string_bytes: 64 * 1024,
            max_array_items: 10_000,
            max_object_members: 1_000,
            max_number_chars: 64,
        }
    }
}

/// Which limit a body exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exceeded {
    /// [`JsonLimits::max_depth`].
    Depth,
    /// [`JsonLimits::max_string_bytes`].
    StringBytes,
    /// [`JsonLimits::max_array_items`].
    ArrayItems,
    /// [`JsonLimits::max_object_members`].
    ObjectMembers,
    /// [`JsonLimits::max_number_chars`].
    NumberChars,
}

/// A body over a limit: where, which, and the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail} (at {pointer:?})", detail = self.detail())]
pub struct OverLimit {
    /// RFC 6901 pointer to the value over the limit (for a member name
    /// over the string limit, or an object with too many members: the
    /// object).
    pub pointer: String,
    /// Which limit.
    pub exceeded: Exceeded,
    /// The limit's value.
    pub limit: usize,
}

impl OverLimit {
    /// What is wrong, in words that never repeat the value.
    pub fn detail(&self) -> String {
        let limit = self.limit;
        match self.exceeded {
            Exceeded::Depth => format!("nested deeper than {limit} levels"),
            Exceeded::StringBytes => format!("a string longer than {limit} bytes"),
            Exceeded::ArrayItems => format!("an array of more than {limit} items"),
            Exceeded::ObjectMembers => format!("an object of more than {limit} members"),
            Exceeded::NumberChars => format!("a number longer than {limit} characters"),
        }
    }
}

/// An open array or object, and where the walk is in it.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// `count` items so far.
    Array { count: usize },
    /// `count` members so far; `key` is the byte range (inside the quotes)
    /// of the current member's name; `want_key` until it is read.
    Object {
        count: usize,
        key: (usize, usize),
        want_key: bool,
    },
}

impl JsonLimits {
    /// The first limit that could refuse every body (zero), by name.
    pub fn zero_limit(&self) -> Option<&'static str> {
        [
            ("max_depth", self.max_depth),
            ("max_string_bytes", self.max_string_bytes),
            ("max_array_items", self.max_array_items),
            ("max_object_members", self.max_object_members),
            ("max_number_chars", self.max_number_chars),
        ]
        .into_iter()
        .find(|(_, v)| *v == 0)
        .map(|(name, _)| name)
    }

    /// Checks `body` against the limits; see the [module docs](self).
    pub fn check(&self, body: &[u8]) -> Result<(), OverLimit> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut i = 0;
        while i < body.len() {
            let byte = body[i];
            match byte {
                b'{' | b'[' => {
                    self.value_starts(&mut stack, body)?;
                    if stack.len() == self.max_depth {
                        return Err(self.over(&stack, body, Exceeded::Depth, self.max_depth));
                    }
                    stack.push(if byte == b'[' {
                        Frame::Array { count: 0 }
                    } else {
                        Frame::Object {
                            count: 0,
                            key: (0, 0),
                            want_key: true,
                        }
                    });
                    i += 1;
                }
                b'}' | b']' => {
                    stack.pop();
                    i += 1;
                }
                b',' => {
                    if let Some(Frame::Object { want_key, .. }) = stack.last_mut() {
                        *want_key = true;
                    }
                    i += 1;
                }
                b'"' => {
                    let start = i + 1;
                    let end = string_end(body, start);
                    let len = end - start;
                    // A member name when the innermost object waits for one.
                    let member = match stack.last_mut() {
                        Some(Frame::Object {
                            count,
                            key,
                            want_key,
                        }) if *want_key => {
                            *want_key = false;
                            *count += 1;
                            *key = (start, end);
                            Some(*count)
                        }
                        _ => None,
                    };
                    match member {
                        Some(members) => {
                            if members > self.max_object_members {
                                return Err(self.over_container(
                                    &stack,
                                    body,
                                    Exceeded::ObjectMembers,
                                    self.max_object_members,
                                ));
                            }
                            if len > self.max_string_bytes {
                                return Err(self.over_container(
                                    &stack,
                                    body,
                                    Exceeded::StringBytes,
                                    self.max_string_bytes,
                                ));
                            }
                        }
                        None => {
                            self.value_starts(&mut stack, body)?;
                            if len > self.max_string_bytes {
                                return Err(self.over(
                                    &stack,
                                    body,
                                    Exceeded::StringBytes,
                                    self.max_string_bytes,
                                ));
                            }
                        }
                    }
                    // Past the closing quote (or the end of unterminated text).
                    i = end + 1;
                }
                b'-' | b'0'..=b'9' => {
                    self.value_starts(&mut stack, body)?;
                    let len = body[i..]
                        .iter()
                        .take_while(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                        .count();
                    if len > self.max_number_chars {
                        return Err(self.over(
                            &stack,
                            body,
                            Exceeded::NumberChars,
                            self.max_number_chars,
                        ));
                    }
                    i += len;
                }
                b't' | b'f' | b'n' => {
                    self.value_starts(&mut stack, body)?;
                    i += body[i..]
                        .iter()
                        .take_while(|b| b.is_ascii_alphabetic())
                        .count();
                }
                // Whitespace, ':' and anything a parser will refuse anyway.
                _ => i += 1,
            }
        }
        Ok(())
    }

    /// A value starts in the innermost container: an array counts it.
    fn value_starts(&self, stack: &mut [Frame], body: &[u8]) -> Result<(), OverLimit> {
        if let Some(Frame::Array { count }) = stack.last_mut() {
            *count += 1;
            if *count > self.max_array_items {
                return Err(self.over_container(
                    stack,
                    body,
                    Exceeded::ArrayItems,
                    self.max_array_items,
                ));
            }
        }
        Ok(())
    }

    /// Over a limit at the value that starts now.
    fn over(&self, stack: &[Frame], body: &[u8], exceeded: Exceeded, limit: usize) -> OverLimit {
        OverLimit {
            pointer: pointer(stack, body, true),
            exceeded,
            limit,
        }
    }

    /// Over a limit of the innermost container itself.
    fn over_container(
        &self,
        stack: &[Frame],
        body: &[u8],
        exceeded: Exceeded,
        limit: usize,
    ) -> OverLimit {
        OverLimit {
            pointer: pointer(stack, body, false),
            exceeded,
            limit,
        }
    }
}

/// The index of the closing quote of a string whose text starts at
/// `start`, or the end of the input when it is unterminated.
fn string_end(body: &[u8], start: usize) -> usize {
    let mut j = start;
    while j < body.len() {
        match body[j] {
            b'\\' => j += 2,
            b'"' => return j,
            _ => j += 1,
        }
    }
    body.len()
}

/// The pointer to the innermost container (`last == false`) or to the
/// value that starts in it now (`last == true`).
fn pointer(stack: &[Frame], body: &[u8], last: bool) -> String {
    let mut out = String::new();
    let n = stack.len();
    for (depth, frame) in stack.iter().enumerate() {
        // Frames below the innermost name the child being read; the
        // innermost names one only when the value in it is meant.
        if depth + 1 == n && !last {
            break;
        }
        out.push('/');
        match *frame {
            Frame::Array { count } => out.push_str(&count.saturating_sub(1).to_string()),
            Frame::Object { key, .. } => push_escaped(&mut out, key_text(body, key).as_str()),
        }
    }
    out
}

/// A member name as text: its escapes decoded when they are valid JSON,
/// otherwise its bytes as UTF-8 (lossy). At most 256 bytes are kept.
fn key_text(body: &[u8], (start, end): (usize, usize)) -> String {
    let end = end.min(body.len());
    let start = start.min(end);
    let raw = &body[start..end];
    let raw = &raw[..raw.len().min(1024)];
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    let mut text = serde_json::from_slice::<String>(&quoted)
        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned());
    if text.len() > 256 {
        let mut cut = 256;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// RFC 6901: `~` as `~0`, `/` as `~1`.
fn push_escaped(out: &mut String, key: &str) {
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(limits: JsonLimits, body: &str) -> (String, Exceeded) {
        let e = limits.check(body.as_bytes()).unwrap_err();
        (e.pointer, e.exceeded)
    }

    #[test]
    fn each_limit_is_inclusive_and_names_the_value() {
        let l = JsonLimits {
            max_depth: 2,
            max_string_bytes: 3,
            max_array_items: 2,
            max_object_members: 2,
            max_number_chars: 3,
        };
        for ok in [
            r#"{"a":[1,2],"b":"xyz"}"#,
            r#"[[],{}]"#,
            r#""abc""#,
            "-12",
            r#"{"k":"a\""}"#,
            "true",
            r#"{"abc":null}"#,
        ] {
            assert_eq!(l.check(ok.as_bytes()), Ok(()), "{ok}");
        }
        assert_eq!(err(l, r#"{"a":[[1]]}"#), ("/a/0".into(), Exceeded::Depth));
        assert_eq!(err(l, r#"[1,[2,[3]]]"#), ("/1/1".into(), Exceeded::Depth));
        assert_eq!(
            err(l, r#"{"a":[1,2,3]}"#),
            ("/a".into(), Exceeded::ArrayItems)
        );
        assert_eq!(
            err(l, r#"{"a":1,"b":2,"c":3}"#),
            ("".into(), Exceeded::ObjectMembers)
        );
        assert_eq!(
            err(l, r#"{"a":"wxyz"}"#),
            ("/a".into(), Exceeded::StringBytes)
        );
        assert_eq!(
            err(l, r#"{"a":{"long":1}}"#),
            ("/a".into(), Exceeded::StringBytes)
        );
        assert_eq!(
            err(l, r#"["a","bc\\"]"#),
            ("/1".into(), Exceeded::StringBytes)
        );
        assert_eq!(
            err(l, r#"{"b":-1.5}"#),
            ("/b".into(), Exceeded::NumberChars)
        );
        assert_eq!(err(l, "1234"), ("".into(), Exceeded::NumberChars));
        // Escaped names are decoded, then escaped as RFC 6901 says.
        let wide = JsonLimits {
            max_depth: 1,
            ..JsonLimits::default()
        };
        assert_eq!(
            err(wide, r#"{"a\/b~\u0063": {}}"#),
            ("/a~1b~0c".into(), Exceeded::Depth)
        );
        // A comma inside a string is not structure.
        assert_eq!(l.check(br#"{"a":",,,","b":"]]]"}"#), Ok(()));
    }

    #[test]
    fn deep_and_broken_input_is_walked_without_recursion_or_panic() {
        let deep = "[".repeat(1_000_000);
        let (pointer, exceeded) = err(JsonLimits::default(), &deep);
        assert_eq!(exceeded, Exceeded::Depth);
        assert_eq!(pointer, "/0".repeat(32));
        for broken in [
            "", "]", "}}}", "\"", "\"\\", "{\"", "{\"a", "[,,,", "{:}", "-", "\u{fffd}", "{\"a\\",
            "[\"\\u12",
        ] {
            let _ = JsonLimits::default().check(broken.as_bytes());
        }
        let _ = JsonLimits::default().check(&[0xff, b'"', 0xfe, b'"', b'{']);
    }

    #[test]
    fn agrees_with_a_parser_on_what_it_lets_through() {
        // Whatever passes the limits parses into a value within them.
        fn depth(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        let l = JsonLimits {
            max_depth: 3,
            ..JsonLimits::default()
        };
        for body in [
            r#"[[[]]]"#,
            r#"[[[[]]]]"#,
            r#"{"a":{"b":{"c":{}}}}"#,
            r#"{"a":[{"b":1}]}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(l.check(body.as_bytes()).is_ok(), depth(&v) <= 3, "{body}");
        }
    }
}
