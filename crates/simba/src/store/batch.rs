//! The engine's short writes outside a step: a run's queueing, lease, start and end, the
//! renewal of the leases a process holds, the marketplace token cache, the named leases (the
//! scheduler's and the other single-process duties'), the scheduler's moves of due times. Each
//! is a few statements in one transaction, listed once as a [`Batch`] and run by each backend
//! family its own way ([`super::hot`]).
//!
//! On a SQLite file a batch joins the writer's queue like a step's commit. On sqlx's pool it
//! waited for SQLite's one write lock behind the writer's groups: at 10,000 shops hundreds of
//! such writes were logged slow, and one lease took 10.04 s of its 10 s busy timeout. A failed
//! one costs a run's drive a lease's delay.

use std::borrow::Cow;

use super::{Db, StoreResult};

/// A value bound to a batch's statement, owned: it crosses to the writer's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    /// The id of the row the batch's last [`Statement::inserting`] statement inserted (NULL
    /// before one ran).
    InsertedId,
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(Some(value))
    }
}

impl From<Option<i64>> for Value {
    fn from(value: Option<i64>) -> Self {
        Value::Int(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(Some(value.to_owned()))
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(Some(value))
    }
}

impl From<Option<&str>> for Value {
    fn from(value: Option<&str>) -> Self {
        Value::Text(value.map(str::to_owned))
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Value::Int(v) => v.to_sql(),
            Value::Text(v) => v.to_sql(),
            Value::InsertedId => unreachable!("bound as the id it stands for (`Changes::values`)"),
        }
    }
}

/// When a batch's statement runs, and what its count of changed rows decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Always,
    /// Runs; if it changes no row, the batch ends there and nothing of it is kept.
    Required,
    /// Runs only if the statement before it changed a row.
    AfterChange,
}

/// One statement of a batch, with `?` placeholders.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub sql: Cow<'static, str>,
    pub values: Vec<Value>,
    pub when: When,
    /// An INSERT of one row whose id the batch keeps ([`Value::InsertedId`], [`Done`]).
    pub inserts: bool,
}

impl Statement {
    pub fn new(sql: impl Into<Cow<'static, str>>, values: Vec<Value>) -> Statement {
        Statement {
            sql: sql.into(),
            values,
            when: When::Always,
            inserts: false,
        }
    }

    pub fn when(self, when: When) -> Statement {
        Statement { when, ..self }
    }

    /// An INSERT of one row (without `RETURNING`) whose id the batch keeps.
    pub fn inserting(self) -> Statement {
        Statement {
            inserts: true,
            ..self
        }
    }
}

/// What one statement did: the rows it changed, and the id of the row an inserting one
/// inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Executed {
    pub rows: u64,
    pub inserted_id: Option<i64>,
}

impl Executed {
    pub fn changed(rows: u64) -> Executed {
        Executed {
            rows,
            inserted_id: None,
        }
    }
}

/// Statements committed together or not at all.
pub(crate) type Batch = Vec<Statement>;

/// What a batch that was kept did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Done {
    /// The rows each statement changed (0 for one that did not run).
    pub rows: Vec<u64>,
    /// The id of the row the last inserting statement inserted.
    pub inserted_id: Option<i64>,
}

/// What a batch did, or `None` when a [`When::Required`] statement changed no row and nothing
/// was kept.
pub(crate) type Outcome = Option<Done>;

/// Runs the batch in one transaction.
pub(crate) async fn run(db: &Db, batch: Batch) -> StoreResult<Outcome> {
    use super::hot::HotPath;
    db.family.write_batch(db, batch).await
}

/// What the statements of a batch did so far, and what that decides for the next.
#[derive(Debug, Default)]
pub(crate) struct Changes(Done);

impl Changes {
    /// Whether `statement` runs, or counts as changing nothing.
    pub fn runs(&self, statement: &Statement) -> bool {
        statement.when != When::AfterChange || self.0.rows.last().is_some_and(|&rows| rows > 0)
    }

    /// `statement`'s values, with [`Value::InsertedId`] bound to the id it stands for.
    pub fn values<'s>(&self, statement: &'s Statement) -> Cow<'s, [Value]> {
        if !statement.values.contains(&Value::InsertedId) {
            return Cow::Borrowed(&statement.values);
        }
        let id = Value::Int(self.0.inserted_id);
        let bound = statement.values.iter().map(|value| match value {
            Value::InsertedId => id.clone(),
            value => value.clone(),
        });
        Cow::Owned(bound.collect())
    }

    /// Records what `statement` did; `false` when the batch ends there, undone.
    pub fn record(&mut self, statement: &Statement, executed: Executed) -> bool {
        self.0.rows.push(executed.rows);
        if executed.inserted_id.is_some() {
            self.0.inserted_id = executed.inserted_id;
        }
        statement.when != When::Required || executed.rows > 0
    }

    pub fn outcome(self) -> Outcome {
        Some(self.0)
    }
}

/// Runs the batch's statements through `execute`, each with its bound values, in order; `None`
/// when a required statement changed no row, and the caller must undo what ran.
pub(crate) fn apply<E>(
    batch: &[Statement],
    mut execute: impl FnMut(&Statement, &[Value]) -> Result<Executed, E>,
) -> Result<Outcome, E> {
    let mut changes = Changes::default();
    for statement in batch {
        let executed = if changes.runs(statement) {
            execute(statement, &changes.values(statement))?
        } else {
            Executed::changed(0)
        };
        if !changes.record(statement, executed) {
            return Ok(None);
        }
    }
    Ok(changes.outcome())
}

/// The server family's batch: a transaction on the pool. A lone statement that inserts nothing
/// is atomic as it is, and runs without a BEGIN and a COMMIT around it: a logged read of a
/// buyer's data pays one round trip, not three.
pub(crate) async fn run_on_pool(db: &Db, batch: &[Statement]) -> StoreResult<Outcome> {
    if let [statement] = batch
        && !statement.inserts
    {
        let mut changes = Changes::default();
        let rows = match changes.runs(statement) {
            true => bound(db, &statement.sql, &changes.values(statement))
                .execute(&db.pool)
                .await?
                .rows_affected(),
            false => 0,
        };
        let kept = changes.record(statement, Executed::changed(rows));
        return Ok(changes.outcome().filter(|_| kept));
    }
    let mut tx = db.begin_write().await?;
    let mut changes = Changes::default();
    for statement in batch {
        let executed = if changes.runs(statement) {
            let sql = if statement.inserts {
                Cow::Owned(format!("{}{}", statement.sql, db.returning_id()))
            } else {
                Cow::Borrowed(&*statement.sql)
            };
            let query = bound(db, &sql, &changes.values(statement));
            if statement.inserts {
                Executed {
                    rows: 1,
                    inserted_id: Some(db.insert(&mut *tx, query).await?),
                }
            } else {
                Executed::changed(query.execute(&mut *tx).await?.rows_affected())
            }
        } else {
            Executed::changed(0)
        };
        if !changes.record(statement, executed) {
            tx.rollback().await?;
            return Ok(None);
        }
    }
    tx.commit().await?;
    Ok(changes.outcome())
}

fn bound<'q>(
    db: &Db,
    sql: &'q str,
    values: &[Value],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    values
        .iter()
        .fold(db.query(sql), |query, value| match value {
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.clone()),
            Value::InsertedId => unreachable!("bound by `Changes::values`"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(when: When) -> Statement {
        Statement::new("", Vec::new()).when(when)
    }

    #[test]
    fn a_required_statement_that_changes_nothing_ends_the_batch() {
        let batch = [
            statement(When::Always),
            statement(When::Required),
            statement(When::Always),
        ];
        let mut counts = [1, 0, 1].into_iter();
        let mut ran = 0;
        let outcome = apply::<()>(&batch, |_, _| {
            ran += 1;
            Ok(Executed::changed(counts.next().unwrap()))
        });
        assert_eq!(outcome, Ok(None));
        assert_eq!(ran, 2);
    }

    #[test]
    fn a_statement_after_a_change_runs_only_after_one() {
        let batch = [
            statement(When::Always),
            statement(When::AfterChange),
            statement(When::Always),
            statement(When::AfterChange),
        ];
        let mut counts = [0, 1, 1].into_iter();
        let outcome = apply::<()>(&batch, |_, _| Ok(Executed::changed(counts.next().unwrap())));
        let done = Done {
            rows: vec![0, 0, 1, 1],
            inserted_id: None,
        };
        assert_eq!(outcome, Ok(Some(done)));
    }

    #[test]
    fn a_statement_after_an_insert_is_given_the_inserted_id() {
        let later = |value| Statement::new("", vec![Value::from(7), value]);
        let batch = [
            later(Value::InsertedId),
            Statement::new("", Vec::new()).inserting(),
            later(Value::InsertedId),
            later(Value::from("x")),
        ];
        let mut bound = Vec::new();
        let outcome = apply::<()>(&batch, |statement, values| {
            bound.push(values.to_vec());
            Ok(Executed {
                rows: 1,
                inserted_id: statement.inserts.then_some(42),
            })
        });
        assert_eq!(
            bound,
            [
                vec![Value::from(7), Value::Int(None)],
                vec![],
                vec![Value::from(7), Value::from(42)],
                vec![Value::from(7), Value::from("x")],
            ]
        );
        assert_eq!(outcome.unwrap().unwrap().inserted_id, Some(42));
    }
}
