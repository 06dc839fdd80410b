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

/// `redis://user:secret@host/0` -> `redis://<redacted>@host/0`: everything
/// between the scheme and the *last* `@` is masked whole, so a password
/// with an unencoded `/`, `?` or `@` never shows; the `pass`/`password`
/// (and `user`) query parameters of socket URLs are masked too.
pub(crate) fn redis_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let rest = match rest.rsplit_once('@') {
        Some((_, after)) => format!("{MASK}@{after}"),
        None => rest.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _))
                        if ["pass", "password", "user", "username"]
                            .iter()
                            .any(|s| k.eq_ignore_ascii_case(s)) =>
                    {
                        format!("{k}={MASK}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => rest,
    };
    format!("{scheme}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            redis_url("redis://app:s3cret@cache:6379/0"),
            "redis://<redacted>@cache:6379/0"
        );
        assert_eq!(
            redis_url("rediss://:s3cret@cache:6380"),
            "rediss://<redacted>@cache:6380"
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
            "redis://<redacted>@host/0"
        );
        // Unencoded `/` or `?` in the password (an invalid URL) still hides it.
        assert_eq!(redis_url("redis://:pa/ss@h"), "redis://<redacted>@h");
        assert_eq!(redis_url("redis://:pa?ss@h"), "redis://<redacted>@h");
        // Socket URLs carry the password as a query parameter.
        assert_eq!(
            redis_url("redis+unix:///run/redis.sock?user=app&pass=s3cret&db=2"),
            "redis+unix:///run/redis.sock?user=<redacted>&pass=<redacted>&db=2"
        );
        assert_eq!(
            redis_url("unix:///run/redis.sock?pass=s3cret"),
            "unix:///run/redis.sock?pass=<redacted>"
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
            Some("redis://<redacted>@h")
        );
    }
}
