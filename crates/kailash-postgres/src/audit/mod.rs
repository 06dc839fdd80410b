//! The audit trail in PostgreSQL: [`PgAuditSink`] (group commit, hash
//! chain, signed checkpoints, outage spool) and [`verify`] (what
//! `kailash audit verify --database-url` runs).

mod append;
mod checkpoint;
mod privacy;
mod retention;
mod sink;
mod verify;

pub use checkpoint::{CheckpointKey, KeyError, VerifyingKey};
pub use privacy::{PersonalData, rewrap};
pub use retention::drop_expired;
pub use sink::{EraseError, PgAuditError, PgAuditOptions, PgAuditSink};
pub use verify::{PgBreak, PgVerifyError, PgVerifyReport, verify};
