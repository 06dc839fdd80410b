//! Against a real PostgreSQL: `KAILASH_TEST_DATABASE_URL` (a server where
//! the user may create databases; each test makes its own) and, for the
//! outage test, `KAILASH_TEST_PG_THROWAWAY` (`.ci/pg/throwaway.sh`, which
//! starts and crashes a private cluster on a spare port). Without them the
//! tests say they were skipped.

mod postgres {
    mod audit;
    mod outage;
    mod privacy;
    mod routing;
    mod support;
    mod tenant_db;
    mod tenants;
}
