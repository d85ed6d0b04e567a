//! Row wrappers: turn PostgreSQL rows into store records, keeping sqlx out of the domain (the
//! mappers and the error classification are shared with the other SQL backend).

herald_store::sql_rows!(sqlx::postgres::PgRow, sqlx::Postgres);

pub(crate) use herald_store::{agent_columns, delivery_columns, event_columns, message_columns, webhook_columns};
