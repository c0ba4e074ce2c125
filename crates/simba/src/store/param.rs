//! Values bound to the statements of the hot paths ([`super::hot`]).

use crate::domain::Timestamp;

/// A value bound to a statement that both backend families run, borrowed from what is written:
/// the statement's values are listed once, and each family binds them its own way.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Int(Option<i64>),
    /// `pickup_point`, a `SMALLINT`.
    Small(Option<i16>),
    Text(Option<&'a str>),
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Int(v) => v.to_sql(),
            Param::Small(v) => v.to_sql(),
            Param::Text(v) => v.to_sql(),
        }
    }
}

impl<'a> Param<'a> {
    /// An instant, bound in Unix seconds as the shipment columns store it.
    pub(crate) fn seconds(at: Option<Timestamp>) -> Param<'a> {
        Param::Int(at.map(Timestamp::unix_seconds))
    }

    /// Binds the value to a sqlx query.
    pub(crate) fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>
    where
        'a: 'q,
    {
        match self {
            Param::Int(v) => query.bind(v),
            Param::Small(v) => query.bind(v),
            Param::Text(v) => query.bind(v),
        }
    }
}
