//! Finding the one credential of a request: the `Authorization: Bearer`
//! header, a configured cookie, or a query parameter on WebSocket upgrades.
//!
//! Two credentials (two headers, a header and a cookie, a header and a query
//! parameter, two cookies) are refused with `invalid_request` rather than
//! one picked: a proxy and the service could pick differently.

use http::Request;
use http::header::{AUTHORIZATION, COOKIE, UPGRADE};

use super::config::Config;

/// What the request carries.
pub(super) enum Cred<'a> {
    Token(&'a str),
    Missing,
    Invalid(&'static str),
}

/// The request's credential, per the layer's `config`.
pub(super) fn credential<'a, B>(config: &Config, req: &'a Request<B>) -> Cred<'a> {
    let header = match from_header(req) {
        Ok(t) => t,
        Err(r) => return Cred::Invalid(r),
    };
    let query = match &config.query_param {
        Some(name) if is_websocket_upgrade(req) => match from_query(req, name) {
            Ok(t) => t,
            Err(r) => return Cred::Invalid(r),
        },
        _ => None,
    };
    let cookie = match &config.cookie {
        Some(name) => match from_cookie(req, name) {
            Ok(t) => t,
            Err(r) => return Cred::Invalid(r),
        },
        None => None,
    };
    // Exactly one place may carry the credential: with two, a proxy that
    // reads one and this layer that reads the other would disagree on who
    // is calling (a bearer header must not silently override a cookie).
    match (header, query, cookie) {
        (None, None, None) => Cred::Missing,
        (Some(t), None, None) | (None, Some(t), None) | (None, None, Some(t)) => Cred::Token(t),
        _ => Cred::Invalid("multiple credentials"),
    }
}

fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().get_all(UPGRADE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
    })
}

fn from_header<B>(req: &Request<B>) -> Result<Option<&str>, &'static str> {
    let mut values = req.headers().get_all(AUTHORIZATION).iter();
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

fn from_query<'a, B>(req: &'a Request<B>, name: &str) -> Result<Option<&'a str>, &'static str> {
    let Some(query) = req.uri().query() else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err("multiple query credentials");
            }
            found = Some(v);
        }
    }
    match found {
        Some("") => Err("malformed query credential"),
        other => Ok(other),
    }
}

fn from_cookie<'a, B>(req: &'a Request<B>, name: &str) -> Result<Option<&'a str>, &'static str> {
    let mut found = None;
    for header in req.headers().get_all(COOKIE) {
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
