//! Finding the one credential of a request: the `Authorization: Bearer`
//! header or a configured cookie. Never the URL: a token in a query string
//! ends up in proxy logs and browser histories.
//!
//! Two credentials (two headers, a header and a cookie, two cookies) are
//! refused with `invalid_request` rather than one picked: a proxy and the
//! service could pick differently.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use super::config::Config;

/// What the request carries.
pub(super) enum Cred<'a> {
    Token(&'a str),
    Missing,
    Invalid(&'static str),
}

/// The credential in `headers`, per the layer's `config`.
pub(super) fn credential<'a>(config: &Config, headers: &'a HeaderMap) -> Cred<'a> {
    let header = match from_header(headers) {
        Ok(t) => t,
        Err(r) => return Cred::Invalid(r),
    };
    let cookie = match &config.cookie {
        Some(name) => match from_cookie(headers, name) {
            Ok(t) => t,
            Err(r) => return Cred::Invalid(r),
        },
        None => None,
    };
    // Exactly one place may carry the credential: with two, a proxy that
    // reads one and this layer that reads the other would disagree on who
    // is calling (a bearer header must not silently override a cookie).
    match (header, cookie) {
        (None, None) => Cred::Missing,
        (Some(t), None) | (None, Some(t)) => Cred::Token(t),
        _ => Cred::Invalid("multiple credentials"),
    }
}

fn from_header(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(_), Some(_)) => return Err("multiple authorization headers"),
        (Some(v), None) => v,
    };
    let text = value
        .to_str()
        .map_err(|_| "malformed authorization header")?;
    let (scheme, rest) = text
        .split_once(' ')
        .ok_or("malformed authorization header")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("unsupported authorization scheme");
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.contains([' ', ',', '\t']) {
        return Err("malformed bearer credential");
    }
    Ok(Some(token))
}

fn from_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, &'static str> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    return Err("multiple credential cookies");
                }
                found = Some(v.trim_matches('"'));
            }
        }
    }
    match found {
        Some("") => Err("malformed credential cookie"),
        other => Ok(other),
    }
}
