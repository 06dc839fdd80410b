//! Prints the argon2id hash of a password read from standard input, for the
//! `password_hash` of a `[[users]]` entry.
//!
//! ```text
//! printf '%s' 'Correct-Horse-9' | kailash-passwd
//! ```
//!
//! ```text
//! kailash-passwd [--allow-weak] [USERNAME]
//! ```
//!
//! The password is checked against the default password policy (with
//! USERNAME, if given, for the "contains the username" rule) unless
//! `--allow-weak` is passed, for importing an existing password. The hash
//! uses the default (OWASP) argon2id parameters.

use std::io::Read as _;
use std::process::ExitCode;

use kailash::auth::password::{Password, PasswordHasher, PasswordPolicy};

fn main() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("error: cannot read standard input: {e}");
        return ExitCode::from(2);
    }
    // A trailing newline from `echo` is not part of the password.
    let password = Password::new(input.strip_suffix('\n').unwrap_or(&input).to_owned());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let allow_weak = args.iter().any(|a| a == "--allow-weak");
    let username = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_default();
    if let Some(unknown) = args
        .iter()
        .find(|a| a.starts_with("--") && *a != "--allow-weak")
    {
        eprintln!(
            "error: unknown option {unknown}\nusage: kailash-passwd [--allow-weak] [USERNAME] < password"
        );
        return ExitCode::from(2);
    }
    if !allow_weak && let Err(violations) = PasswordPolicy::default().validate(&password, &username)
    {
        eprintln!("error: {violations} (pass --allow-weak to hash it anyway)");
        return ExitCode::from(1);
    }
    match PasswordHasher::default().hash(&password) {
        Ok(hash) => {
            println!("{}", hash.as_str());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
