//! Masking secrets in a printed configuration.
//!
//! Masked: users' `password_hash` (an offline guessing target) and
//! `totp_secret` (a second factor in clear), and the password in
//! `state.redis_url`. Key files are named by path, and a path is not the
//! key, so paths stay visible: an operator checking a config needs them.

use kailash::config::GatewayConfig;

/// What a masked value reads as.
pub(crate) const MASK: &str = "<redacted>";

/// Masks the secrets in `config` in place.
pub(crate) fn secrets(config: &mut GatewayConfig) {
    for user in &mut config.users {
        MASK.clone_into(&mut user.password_hash);
        if let Some(secret) = &mut user.totp_secret {
            MASK.clone_into(secret);
        }
    }
    if let Some(url) = &mut config.state.redis_url {
        *url = redis_url(url);
    }
}

/// `redis://user:secret@host/0` -> `redis://user:<redacted>@host/0`; a
/// user part without `:` may be a bare password, so it is masked whole; a
/// `password=` query parameter is masked too.
pub(crate) fn redis_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => format!("{MASK}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={MASK}"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            redis_url("redis://app:s3cret@cache:6379/0"),
            "redis://app:<redacted>@cache:6379/0"
        );
        assert_eq!(
            redis_url("rediss://:s3cret@cache:6380"),
            "rediss://:<redacted>@cache:6380"
        );
        assert_eq!(
            redis_url("redis://s3cret@cache"),
            "redis://<redacted>@cache"
        );
        assert_eq!(
            redis_url("redis+unix:///run/redis.sock?db=1&password=s3cret"),
            "redis+unix:///run/redis.sock?db=1&password=<redacted>"
        );
        assert_eq!(
            redis_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        // A password containing `@` or `:` is masked whole.
        assert_eq!(
            redis_url("redis://u:p@ss:w@host/0"),
            "redis://u:<redacted>@host/0"
        );
    }

    #[test]
    fn user_secrets_are_masked() {
        let mut config = GatewayConfig::from_toml_str(
            "[auth]\nissuer = \"i\"\naudience = \"a\"\n[[users]]\nusername = \"a\"\n\
             password_hash = \"$argon2id$v=19$m=19456,t=2,p=1$fP2XnF/Jdfk2pTqw48EqiA$CROXYRm9f+vQm4BHYy4wAwAlCl6JWZqyYsOgumK7zCw\"\n\
             totp_secret = \"JBSWY3DPEHPK3PXP\"\n",
            "t.toml",
        )
        .unwrap();
        config.state.redis_url = Some("redis://:pw@h".into());
        secrets(&mut config);
        let user = &config.users[0];
        assert_eq!(user.username, "a");
        assert_eq!(user.password_hash, MASK);
        assert_eq!(user.totp_secret.as_deref(), Some(MASK));
        assert_eq!(
            config.state.redis_url.as_deref(),
            Some("redis://:<redacted>@h")
        );
    }
}
