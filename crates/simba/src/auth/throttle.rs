//! Login throttling: too many wrong passwords for one account or one login name, or from one
//! client address, within [`WINDOW`] answer 429 with `Retry-After` until enough of them age out.
//!
//! Failures are rows in the database (`store::login_failures`), so every process counts the
//! same ones and a restart forgets none. A password check counts against:
//! - the account, when the name typed (username or email, any case or spacing) resolves to one:
//!   the lock follows the account, not the string that names it;
//! - the name as typed, trimmed and lower-cased, whether or not it names an account, so that an
//!   unknown name is throttled exactly like a known one and the answers (401, then 429) cannot
//!   tell them apart;
//! - the client's address (`client_address`; its /64 for IPv6, the block one subscriber usually
//!   holds).
//!
//! Subjects are stored as keyed fingerprints ([`crate::crypto::Cipher::fingerprint`]): no
//! address or typed name is readable in the table. For the account and the name, an attempt is
//! recorded as a failure before its password is checked, then taken back if the password was
//! right: parallel guesses at one account cannot all pass the check before any failure is
//! counted, and a client that hangs up mid-check has still spent its try. The address is
//! charged only once the password has proved wrong: it is shared by everyone behind one NAT or
//! proxy, and counting checks still in progress there would refuse a crowd of right passwords
//! (a Monday morning's logins, queued behind argon2 on a small server). Parallel guesses from
//! one address at many accounts can therefore overshoot its limit by as many as are in flight
//! at once, and are then locked out like any others. A locked subject is refused before
//! anything is written, and every attempt recorded prunes a batch of expired rows, so the table
//! holds at most the attempts of one window, which each cost an argon2 verification.
//!
//! That overshoot, and the CPU a flood of checks costs, are bounded by [`ChecksInFlight`]: one
//! process checks at most [`CHECKS_IN_FLIGHT_PER_ADDRESS`] passwords of one client address at
//! a time, and answers 429 to more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::RngCore;

use crate::crypto::Cipher;
use crate::domain::{ClientBlock, Timestamp};
use crate::store::users::User;
use crate::store::{Db, StoreError, StoreResult, login_failures};

/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures allowed per account and per login name within the window.
pub const PER_ACCOUNT: usize = 5;
/// Failures allowed per client address within the window: enough for an office behind one
/// address, few enough to stop one client from trying a password on many accounts.
pub const PER_ADDRESS: usize = 50;

const FINGERPRINT_PURPOSE: &str = "login-throttle";

/// Password checks one process runs at once for one client address (its /64 for IPv6). An
/// argon2 verification takes tens of milliseconds of a core: without a bound, one client could
/// keep every core busy, and spray guesses at many accounts faster than its failures are
/// counted. Eight is more than one office's simultaneous logins.
pub const CHECKS_IN_FLIGHT_PER_ADDRESS: usize = 8;

/// A refusal to check a password now: a subject is at its limit, or its address has too many
/// checks under way; it may try again after `retry_after_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts; try again in {retry_after_secs} seconds")]
pub struct Throttled {
    pub retry_after_secs: u64,
}

/// Why a password check may not begin.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error(transparent)]
    Throttled(#[from] Throttled),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The password checks in progress in this process, per client block.
#[derive(Debug, Default)]
pub struct ChecksInFlight(Arc<Mutex<HashMap<ClientBlock, usize>>>);

impl ChecksInFlight {
    /// A place for one check from `client`, held until the guard is dropped; 429 when the
    /// client has [`CHECKS_IN_FLIGHT_PER_ADDRESS`] under way already.
    pub fn enter(&self, client: IpAddr) -> Result<CheckInFlight, Throttled> {
        let block = ClientBlock::from(client);
        let mut checks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = checks.entry(block).or_default();
        if *count >= CHECKS_IN_FLIGHT_PER_ADDRESS {
            return Err(Throttled {
                retry_after_secs: 1,
            });
        }
        *count += 1;
        Ok(CheckInFlight {
            checks: self.0.clone(),
            block,
        })
    }
}

/// One password check under way; dropping it frees its place.
#[derive(Debug)]
pub struct CheckInFlight {
    checks: Arc<Mutex<HashMap<ClientBlock, usize>>>,
    block: ClientBlock,
}

impl Drop for CheckInFlight {
    fn drop(&mut self) {
        let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = checks.get_mut(&self.block) {
            *count -= 1;
            if *count == 0 {
                checks.remove(&self.block);
            }
        }
    }
}

/// What a failure counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    Account(i64),
    Name(String),
    Address(String),
}

impl Subject {
    fn name(typed: &str) -> Subject {
        Subject::Name(typed.trim().to_lowercase())
    }

    fn address(ip: IpAddr) -> Subject {
        Subject::Address(ClientBlock::from(ip).to_string())
    }

    fn limit(&self) -> usize {
        match self {
            Subject::Account(_) | Subject::Name(_) => PER_ACCOUNT,
            Subject::Address(_) => PER_ADDRESS,
        }
    }

    fn key(&self, cipher: &Cipher) -> String {
        let value = match self {
            Subject::Account(id) => format!("account:{id}"),
            Subject::Name(name) => format!("name:{name}"),
            Subject::Address(address) => format!("address:{address}"),
        };
        cipher.fingerprint(FINGERPRINT_PURPOSE, &[&value])
    }

    /// What a right password for `user` forgives: the account and the names that resolve to it.
    fn forgiven_by(user: &User) -> [Subject; 3] {
        [
            Subject::Account(user.id),
            Subject::name(&user.username),
            Subject::name(&user.email),
        ]
    }
}

/// A password check in progress. Its account and name have already spent a try, which
/// [`Attempt::succeeded`] takes back; its address spends one only at [`Attempt::failed`].
#[must_use = "a checked password must call `succeeded` or `failed`"]
#[derive(Debug)]
pub struct Attempt {
    id: String,
    reserved: Vec<String>,
    address: String,
    forgiven: Vec<String>,
}

impl Attempt {
    /// The password was right: this attempt is no failure, and the account's failures (by
    /// account and by its names) are forgiven. The address's are not: a client that knows one
    /// password must not gain tries against other accounts.
    ///
    /// A database error here is logged, not returned: the seller has proved the password, and
    /// the try left counted against the account ages out with the window.
    pub async fn succeeded(self, db: &Db) {
        let since = Timestamp::now() - WINDOW;
        let taken_back =
            login_failures::take_back(db, &self.reserved, &self.id, &self.forgiven, since).await;
        if let Err(error) = taken_back {
            tracing::warn!(
                error = format!("{:#}", anyhow::Error::from(error)),
                "taking back the login attempt of a right password"
            );
        }
    }

    /// The password was wrong: the address is charged too.
    pub async fn failed(self, db: &Db) -> StoreResult<()> {
        login_failures::record(db, &[self.address], &self.id, Timestamp::now()).await
    }
}

/// Starts a login as `typed`, which names `account` if it resolved to one, from `client`.
pub async fn begin_login(
    db: &Db,
    cipher: &Cipher,
    typed: &str,
    account: Option<&User>,
    client: IpAddr,
) -> Result<Attempt, ThrottleError> {
    let mut reserved = vec![Subject::name(typed)];
    let mut forgiven = Vec::new();
    if let Some(user) = account {
        reserved.push(Subject::Account(user.id));
        forgiven.extend(Subject::forgiven_by(user));
    }
    begin(db, cipher, &reserved, Subject::address(client), &forgiven).await
}

/// Starts a check of `user`'s current password (a password change) from `client`: the same
/// budget as logging in to the account.
pub async fn begin_password_check(
    db: &Db,
    cipher: &Cipher,
    user: &User,
    client: IpAddr,
) -> Result<Attempt, ThrottleError> {
    let reserved = [Subject::Account(user.id)];
    let address = Subject::address(client);
    begin(db, cipher, &reserved, address, &Subject::forgiven_by(user)).await
}

async fn begin(
    db: &Db,
    cipher: &Cipher,
    reserved: &[Subject],
    address: Subject,
    forgiven: &[Subject],
) -> Result<Attempt, ThrottleError> {
    let now = Timestamp::now();
    let since = now - WINDOW;
    let mut limits: Vec<(String, usize)> = reserved
        .iter()
        .map(|s| (s.key(cipher), s.limit()))
        .collect();
    let reserved_keys: Vec<String> = limits.iter().map(|(key, _)| key.clone()).collect();
    let address_key = address.key(cipher);
    limits.push((address_key.clone(), address.limit()));
    let keys: Vec<String> = limits.iter().map(|(key, _)| key.clone()).collect();
    let attempt = attempt_id();
    let failures = login_failures::live(db, &keys, since, &attempt).await?;
    if let Some(until) = locked_until(&failures, &limits, WINDOW) {
        return Err(too_many(until, now).into());
    }
    login_failures::record(db, &reserved_keys, &attempt, now).await?;
    // Counted again without this attempt's rows but with those of any attempt that raced past
    // the first read: of such attempts, at most as many go on as the limits leave room for.
    let failures = login_failures::live(db, &keys, since, &attempt).await?;
    if let Some(until) = locked_until(&failures, &limits, WINDOW) {
        login_failures::take_back(db, &reserved_keys, &attempt, &[], since).await?;
        return Err(too_many(until, now).into());
    }
    // Housekeeping: the next attempt prunes what this one could not (a deadlock victim, a
    // busy SQLite), and the login must not fail for it.
    if let Err(error) = login_failures::prune(db, since).await {
        tracing::warn!(
            error = format!("{:#}", anyhow::Error::from(error)),
            "pruning expired login failures"
        );
    }
    Ok(Attempt {
        id: attempt,
        reserved: reserved_keys,
        address: address_key,
        forgiven: forgiven.iter().map(|s| s.key(cipher)).collect(),
    })
}

/// When some subject stops being at its limit, if one is: when its `limit`-th newest failure
/// leaves the window, it is below the limit again.
fn locked_until(
    failures: &[(String, Timestamp)],
    limits: &[(String, usize)],
    window: Duration,
) -> Option<Timestamp> {
    limits
        .iter()
        .filter_map(|(key, limit)| {
            let mut times: Vec<Timestamp> = failures
                .iter()
                .filter(|(subject, _)| subject == key)
                .map(|(_, at)| *at)
                .collect();
            times.sort_unstable_by(|a, b| b.cmp(a));
            times.get(limit.checked_sub(1)?).map(|at| *at + window)
        })
        .max()
}

fn too_many(until: Timestamp, now: Timestamp) -> Throttled {
    Throttled {
        retry_after_secs: until.since(now).as_secs_f64().ceil().max(1.0) as u64,
    }
}

fn attempt_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_a_bounded_number_of_checks_at_once() {
        let checks = ChecksInFlight::default();
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        let mut held: Vec<CheckInFlight> = (0..CHECKS_IN_FLIGHT_PER_ADDRESS)
            .map(|_| checks.enter(client).unwrap())
            .collect();
        let same_block: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(matches!(
            checks.enter(same_block),
            Err(Throttled {
                retry_after_secs: 1
            })
        ));
        assert!(checks.enter("2001:db8:0:1::1".parse().unwrap()).is_ok());
        held.pop();
        assert!(checks.enter(client).is_ok());
        held.clear();
        assert!(checks.0.lock().unwrap().is_empty(), "every place is freed");
    }

    fn failures(subject: &str, times: &[i64]) -> Vec<(String, Timestamp)> {
        times
            .iter()
            .map(|t| (subject.to_owned(), Timestamp::from_unix_seconds(*t)))
            .collect()
    }

    const WINDOW_100: Duration = Duration::from_secs(100);

    fn at(second: i64) -> Option<Timestamp> {
        Some(Timestamp::from_unix_seconds(second))
    }

    #[test]
    fn a_subject_is_locked_until_its_limit_th_newest_failure_ages_out() {
        let limits = [("a".to_owned(), 3)];
        assert_eq!(
            locked_until(&failures("a", &[10, 20]), &limits, WINDOW_100),
            None
        );
        assert_eq!(
            locked_until(&failures("a", &[40, 10, 30, 20]), &limits, WINDOW_100),
            at(120)
        );
    }

    #[test]
    fn the_longest_lock_of_several_subjects_wins() {
        let limits = [
            ("a".to_owned(), 1),
            ("b".to_owned(), 2),
            ("c".to_owned(), 1),
        ];
        let mut all = failures("a", &[50]);
        all.extend(failures("b", &[10, 70]));
        assert_eq!(locked_until(&all, &limits, WINDOW_100), at(150));
        assert_eq!(locked_until(&all, &limits[2..], WINDOW_100), None);
    }

    #[test]
    fn any_spelling_of_a_name_is_one_subject() {
        for typed in ["carol", " carol", "CAROL\t", "Carol"] {
            assert_eq!(Subject::name(typed), Subject::Name("carol".into()));
        }
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_block_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Subject::address(a), Subject::address(b));
        assert_ne!(Subject::address(a), Subject::address(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(Subject::address(mapped), Subject::address(v4));
    }

    #[test]
    fn subjects_of_different_kinds_never_share_a_key() {
        let cipher = Cipher::new(&secrecy::SecretString::from("k".repeat(32)));
        let account = Subject::Account(7).key(&cipher);
        assert_ne!(account, Subject::Name("7".into()).key(&cipher));
        assert_ne!(account, Subject::Address("7".into()).key(&cipher));
        assert_eq!(account.len(), 64);
    }
}
