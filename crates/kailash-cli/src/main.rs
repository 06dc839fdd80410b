//! `kailash`: the operator command of kailash-rs (see README.md).
//!
//! ```text
//! kailash passwd [--config FILE] [--allow-weak] [USERNAME] < password
//! kailash config check FILE [--data-dir DIR]
//! kailash keys rotate --config FILE [--data-dir DIR]
//! kailash access explain --config FILE --user U --permission P [--resource JSON] [--time T] [--client-ip IP] [--json]
//! kailash access test --config FILE CASES
//! kailash audit verify [--data-dir DIR | FILE... | --database-url-env VAR [--public-key PEM]...]
//! ```
//!
//! Exit codes: 0 done; 1 refused (a weak password, an invalid config, a
//! failed rotation, a test case that does not match, a broken audit
//! chain); 2 bad usage or unreadable input (for `access`: also an unusable
//! config, an unknown user or permission, a malformed case).
#![forbid(unsafe_code)]
// No panics on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]

mod access;
mod audit;
mod check;
mod data_dir;
mod keys;
mod mask;
mod passwd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operate a kailash gateway: password hashes, config checks, key rotation,
/// access-policy explanations and tests, audit verification.
#[derive(Debug, Parser)]
#[command(name = "kailash", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the argon2id hash of a password read from standard input, for
    /// the `password_hash` of a `[[users]]` entry.
    ///
    /// A trailing newline is not part of the password. The password must
    /// meet the password policy: the default one, or with --config that
    /// deployment's `[auth] password_policy`.
    Passwd {
        /// Check against this config file's `[auth] password_policy`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Hash a password the policy refuses (to import an existing one).
        #[arg(long)]
        allow_weak: bool,
        /// The user, for the "contains the username" rule.
        #[arg(value_name = "USERNAME")]
        username: Option<String>,
    },
    /// Gateway configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// JWT signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The config's access policy: explain a decision, or test a table of cases.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AccessCommand {
    /// Explain the decision for one of the config's `[[users]]`: the rule
    /// the audit trail would record, and what every role, policy and
    /// comparison said.
    Explain {
        /// The gateway's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A username of the config's `[[users]]`.
        #[arg(long, value_name = "USER")]
        user: String,
        /// The permission, `resource:action`.
        #[arg(long, value_name = "PERMISSION")]
        permission: String,
        /// The resource's attributes (`data.*`) as a JSON object.
        #[arg(long, value_name = "JSON")]
        resource: Option<String>,
        /// When (`current_time.*`), RFC 3339; default now.
        #[arg(long, value_name = "TIME")]
        time: Option<String>,
        /// From where (`request.client_ip`); default none.
        #[arg(long, value_name = "IP")]
        client_ip: Option<String>,
        /// Print JSON (as POST /api/access/explain answers) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a TOML table of cases (`[[case]] user, permission, resource,
    /// time, client_ip, expect = "allow"|"deny", reason`) against the
    /// config's policy: exit 0 when all match, 1 on a mismatch, 2 on an
    /// unusable file.
    Test {
        /// The gateway's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The cases file (TOML).
        #[arg(value_name = "CASES")]
        cases: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of the audit files: every entry's hash, the
    /// sequence numbers, and that each file continues the one before
    /// (closed `.gz` files are read as they are). Prints the first broken
    /// entry and exits 1 if the chain is broken.
    Verify {
        /// The gateway's data directory, holding `audit.jsonl` and its
        /// closed files (default: $KAILASH_DATA_DIR, else ./data).
        #[arg(long, value_name = "DIR", conflicts_with = "files")]
        data_dir: Option<PathBuf>,
        /// Verify the trail in PostgreSQL instead: the name of the
        /// environment variable holding its URL (never the URL itself on
        /// the command line, where `ps` shows it), e.g.
        /// `KAILASH_DATABASE_URL`. Every entry's hash is recomputed, every
        /// checkpoint's signature checked, and the end compared with the
        /// newest checkpoint and the chain's head.
        #[arg(long, value_name = "VAR", conflicts_with_all = ["files", "data_dir"])]
        database_url_env: Option<String>,
        /// Public keys (PEM) that signed the checkpoints, with
        /// `--database-url-env`; a checkpoint no given key verifies is
        /// reported as forged. Without keys, checkpoints are checked only
        /// against the chain.
        #[arg(long, value_name = "PEM", requires = "database_url_env")]
        public_key: Vec<PathBuf>,
        /// A CA certificate (PEM) to trust for the database's TLS.
        #[arg(long, value_name = "PEM", requires = "database_url_env")]
        ca_file: Option<PathBuf>,
        /// Verify these files instead, oldest first (closed files, then
        /// the active one).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config as the gateway does at start (environment
    /// overrides included) and print the effective configuration as TOML,
    /// secrets masked.
    Check {
        /// The TOML config file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where relative key paths are resolved, as the gateway's
        /// --data-dir (default: $KAILASH_DATA_DIR, else ./data).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate a new signing key for the configured `[auth] algorithm`
    /// under DIR/keys/ and print the `[auth]` lines that put it in force.
    Rotate {
        /// The gateway's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The gateway's data directory (default: $KAILASH_DATA_DIR, else ./data).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// What a subcommand reports: its message and exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Refused: the input was read and is not acceptable (exit 1).
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    /// The input could not be read or used at all (exit 2).
    pub(crate) fn input(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Passwd {
            config,
            allow_weak,
            username,
        } => passwd::run(config.as_deref(), allow_weak, username.as_deref()),
        Command::Config {
            command: ConfigCommand::Check { file, data_dir },
        } => check::run(&file, &data_dir::resolve(data_dir)),
        Command::Keys {
            command: KeysCommand::Rotate { config, data_dir },
        } => keys::run(&config, &data_dir::resolve(data_dir)),
        Command::Access {
            command:
                AccessCommand::Explain {
                    config,
                    user,
                    permission,
                    resource,
                    time,
                    client_ip,
                    json,
                },
        } => access::explain(&access::ExplainArgs {
            config: &config,
            user: &user,
            permission: &permission,
            resource: resource.as_deref(),
            time: time.as_deref(),
            client_ip: client_ip.as_deref(),
            json,
        }),
        Command::Access {
            command: AccessCommand::Test { config, cases },
        } => access::test(&config, &cases),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    database_url_env: Some(var),
                    public_key,
                    ca_file,
                    ..
                },
        } => audit::run_database(&var, &public_key, ca_file),
        Command::Audit {
            command: AuditCommand::Verify {
                data_dir, files, ..
            },
        } => audit::run(&data_dir::resolve(data_dir), &files),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
