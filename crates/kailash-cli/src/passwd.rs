//! `kailash passwd`: hash a password for a `[[users]]` entry.

use std::io::Read as _;
use std::path::Path;

use kailash::auth::password::{Password, PasswordHasher, PasswordPolicy};
use kailash::config::GatewayConfig;

use crate::Failure;

/// The policy to check against: the deployment's own, or the default.
fn policy(config: Option<&Path>) -> Result<PasswordPolicy, Failure> {
    let Some(path) = config else {
        return Ok(PasswordPolicy::default());
    };
    let config = GatewayConfig::load(path).map_err(|e| Failure::input(e.to_string()))?;
    let auth = config.auth.ok_or_else(|| {
        Failure::input(format!(
            "{}: no [auth] section, so no password policy (its users cannot log in)",
            path.display()
        ))
    })?;
    Ok(auth.password_policy)
}

pub(crate) fn run(
    config: Option<&Path>,
    allow_weak: bool,
    username: Option<&str>,
) -> Result<(), Failure> {
    let policy = policy(config)?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| Failure::input(format!("cannot read standard input: {e}")))?;
    // A trailing newline from `echo` is not part of the password.
    let password = Password::new(input.strip_suffix('\n').unwrap_or(&input).to_owned());
    if !allow_weak && let Err(violations) = policy.validate(&password, username.unwrap_or_default())
    {
        return Err(Failure::refused(format!(
            "{violations} (pass --allow-weak to hash it anyway)"
        )));
    }
    let hash = PasswordHasher::default()
        .hash(&password)
        .map_err(|e| Failure::refused(e.to_string()))?;
    println!("{}", hash.as_str());
    Ok(())
}
