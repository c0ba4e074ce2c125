//! Sandbox settings: the `simba sandbox` flags and the programmatic config they become.
//!
//! Client secrets are plain strings on purpose: they are fake, printed at start-up, and tests
//! need to hand them to clients.

use crate::faults::Faults;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::{net::SocketAddr, path::PathBuf};

/// Flags of `simba sandbox`.
#[derive(clap::Args, Clone, Debug)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001")]
    pub addr: SocketAddr,
    /// Seed of all generated data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of accounts: client ids sandbox-1..N, secrets secret-1..N (at most 16,384).
    #[arg(long, default_value_t = 1)]
    pub accounts: u32,
    /// FBR shipments per account at start.
    #[arg(long, default_value_t = 120)]
    pub fbr: u32,
    /// FBB shipments per account at start.
    #[arg(long, default_value_t = 30)]
    pub fbb: u32,
    /// Token lifetime in marketplace seconds.
    #[arg(long, default_value_t = 299)]
    pub token_lifetime: u64,
    /// How many marketplace seconds pass per real second (60: a rate window lasts 1 s).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// List calls per account per window (0: unlimited).
    #[arg(long, default_value_t = 25)]
    pub list_limit: u32,
    /// Detail calls per account per window (0: unlimited).
    #[arg(long, default_value_t = 50)]
    pub detail_limit: u32,
    /// Token calls per account per window (0: unlimited).
    #[arg(long, default_value_t = 20)]
    pub token_limit: u32,
    /// New FBR shipments per account per marketplace minute.
    #[arg(long, default_value_t = 0.0)]
    pub arrival_rate: f64,
    /// New FBB shipments per account per marketplace minute.
    #[arg(long, default_value_t = 0.0)]
    pub fbb_arrival_rate: f64,
    /// Share of API requests answered with a 5xx HTML page.
    #[arg(long = "fault-5xx-rate", default_value_t = 0.0)]
    pub fault_5xx_rate: f64,
    /// Latency added to every API request, in real milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of 200 answers with a malformed JSON body.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Share of 200 answers whose body is cut off mid-way.
    #[arg(long, default_value_t = 0.0)]
    pub truncated_rate: f64,
    /// Share of API requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Push no UPDATE_TRANSPORT_EVENT notifications when shipments' transport changes.
    #[arg(long)]
    pub no_transport_updates: bool,
    /// JSON file describing the accounts (replaces --accounts, --fbr and --fbb):
    /// `{"accounts":[{"client_id":"a","client_secret":"s","fbr":10,"fbb":2}]}`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// One marketplace account (a seller) and its credentials.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Shipments at start, per fulfilment method.
    #[serde(default)]
    pub fbr: u32,
    #[serde(default)]
    pub fbb: u32,
}

impl AccountConfig {
    /// `count` accounts `sandbox-1..N` with secrets `secret-1..N`.
    pub fn numbered(count: u32, fbr: u32, fbb: u32) -> Vec<AccountConfig> {
        (1..=count)
            .map(|n| AccountConfig {
                client_id: format!("sandbox-{n}"),
                client_secret: format!("secret-{n}"),
                fbr,
                fbb,
            })
            .collect()
    }
}

/// Per-window limits per account; 0 means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub list: u32,
    pub detail: u32,
    pub token: u32,
}

impl Limits {
    /// No limits at all, for benchmarks.
    pub const OFF: Limits = Limits {
        list: 0,
        detail: 0,
        token: 0,
    };
}

impl Default for Limits {
    /// The published values (list 25, detail 50 per minute) and 20 token calls.
    fn default() -> Self {
        Limits {
            list: 25,
            detail: 50,
            token: 20,
        }
    }
}

/// A sandbox's settings. `Default` is one account `sandbox-1` with 120 FBR and 30 FBB shipments,
/// real limits, no faults, listening on `127.0.0.1:0`.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxConfig {
    pub addr: SocketAddr,
    pub seed: u64,
    pub accounts: Vec<AccountConfig>,
    /// Marketplace seconds.
    pub token_lifetime: u64,
    pub time_scale: f64,
    pub limits: Limits,
    /// New shipments per account per marketplace minute: FBR, FBB.
    pub arrivals_per_minute: (f64, f64),
    pub faults: Faults,
    /// Push `UPDATE_TRANSPORT_EVENT` notifications when shipments' transport changes.
    pub transport_updates: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            accounts: AccountConfig::numbered(1, 120, 30),
            token_lifetime: 299,
            time_scale: 1.0,
            limits: Limits::default(),
            arrivals_per_minute: (0.0, 0.0),
            faults: Faults::default(),
            transport_updates: true,
        }
    }
}

impl SandboxConfig {
    /// Replaces the accounts by `count` numbered ones.
    pub fn with_accounts(mut self, count: u32, fbr: u32, fbb: u32) -> Self {
        self.accounts = AccountConfig::numbered(count, fbr, fbb);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(format!(
                "time scale must be positive, got {}",
                self.time_scale
            ));
        }
        if self.accounts.is_empty() || self.accounts.len() > crate::ids::MAX_ACCOUNTS {
            return Err(format!(
                "between 1 and {} accounts are supported",
                crate::ids::MAX_ACCOUNTS
            ));
        }
        if self
            .accounts
            .iter()
            .any(|a| u64::from(a.fbr.max(a.fbb)) >= crate::ids::MAX_INDEX)
        {
            return Err(format!(
                "at most {} shipments per account and method",
                crate::ids::MAX_INDEX - 1
            ));
        }
        let mut ids: Vec<&str> = self.accounts.iter().map(|a| a.client_id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("client ids must be unique".into());
        }
        let (fbr, fbb) = self.arrivals_per_minute;
        if !(fbr >= 0.0 && fbb >= 0.0 && fbr.is_finite() && fbb.is_finite()) {
            return Err("arrival rates must be non-negative".into());
        }
        self.faults.validate()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    accounts: Vec<AccountConfig>,
}

impl SandboxArgs {
    /// Builds the config, reading `--config` if given.
    pub fn into_config(self) -> anyhow::Result<SandboxConfig> {
        let accounts = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let file: ConfigFile = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?;
                file.accounts
            }
            None => AccountConfig::numbered(self.accounts, self.fbr, self.fbb),
        };
        let config = SandboxConfig {
            addr: self.addr,
            seed: self.seed,
            accounts,
            token_lifetime: self.token_lifetime,
            time_scale: self.time_scale,
            limits: Limits {
                list: self.list_limit,
                detail: self.detail_limit,
                token: self.token_limit,
            },
            arrivals_per_minute: (self.arrival_rate, self.fbb_arrival_rate),
            faults: Faults {
                error_rate: self.fault_5xx_rate,
                latency_ms: self.latency_ms,
                malformed_rate: self.malformed_rate,
                truncated_rate: self.truncated_rate,
                drop_rate: self.drop_rate,
            },
            transport_updates: !self.no_transport_updates,
        };
        if let Err(e) = config.validate() {
            bail!("invalid sandbox settings: {e}");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SandboxArgs,
    }

    #[test]
    fn flags_become_a_config() {
        let cli = Cli::parse_from([
            "x",
            "--accounts",
            "2",
            "--fbr",
            "5",
            "--time-scale",
            "60",
            "--fault-5xx-rate",
            "0.1",
        ]);
        let config = cli.args.into_config().unwrap();
        assert_eq!(config.accounts, AccountConfig::numbered(2, 5, 30));
        assert_eq!(config.accounts[1].client_secret, "secret-2");
        assert_eq!(config.time_scale, 60.0);
        assert_eq!(config.faults.error_rate, 0.1);
        assert_eq!(config.addr.port(), 8001);
        assert!(config.transport_updates);
        let cli = Cli::parse_from(["x", "--no-transport-updates"]);
        assert!(!cli.args.into_config().unwrap().transport_updates);
    }

    #[test]
    fn ten_thousand_accounts_are_accepted_and_more_than_ids_hold_are_not() {
        let config = SandboxConfig::default().with_accounts(10_000, 80, 20);
        assert_eq!(config.validate(), Ok(()));
        let too_many = crate::ids::MAX_ACCOUNTS as u32 + 1;
        let config = SandboxConfig::default().with_accounts(too_many, 1, 1);
        assert!(config.validate().unwrap_err().contains("accounts"));
    }

    #[test]
    fn nonsense_settings_are_refused() {
        let cli = Cli::parse_from(["x", "--time-scale", "0"]);
        assert!(cli.args.into_config().is_err());
        let cli = Cli::parse_from(["x", "--drop-rate", "2"]);
        assert!(cli.args.into_config().is_err());
    }
}
