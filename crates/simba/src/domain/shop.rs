//! Shop credential fields and marketplace vocabulary.

use secrecy::{ExposeSecret, SecretString};

use super::bounded_text;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopName(String);

impl ShopName {
    pub fn parse(value: &str) -> Result<ShopName, String> {
        bounded_text(value, 200).map(|v| ShopName(v.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The marketplace account's client id: printable, no whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(value: &str) -> Result<ClientId, String> {
        let value = bounded_text(value, 200)?;
        if value.chars().any(char::is_whitespace) {
            return Err("must not contain whitespace".into());
        }
        Ok(ClientId(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The marketplace account's client secret; write-only everywhere.
#[derive(Debug, Clone)]
pub struct ClientSecret(SecretString);

impl ClientSecret {
    pub fn parse(value: &SecretString) -> Result<ClientSecret, String> {
        let plain = value.expose_secret();
        if plain.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if plain.len() > 500 {
            return Err("must be at most 500 characters".into());
        }
        if plain.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain whitespace or control characters".into());
        }
        Ok(ClientSecret(value.clone()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Minutes between automatic incremental syncs: at least 1, at most a week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncInterval(i32);

impl SyncInterval {
    pub const DEFAULT: SyncInterval = SyncInterval(15);

    pub fn parse(minutes: i64) -> Result<SyncInterval, String> {
        match i32::try_from(minutes) {
            Ok(m @ 1..=10_080) => Ok(SyncInterval(m)),
            _ => Err("must be between 1 and 10080 minutes".into()),
        }
    }

    pub fn minutes(self) -> i32 {
        self.0
    }
}

/// Marketplaces Simba can sync; only bol.com so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Marketplace {
    #[default]
    Bol,
}

impl Marketplace {
    pub fn parse(value: &str) -> Result<Marketplace, String> {
        match value {
            "bol" => Ok(Marketplace::Bol),
            _ => Err("must be one of: bol".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Marketplace::Bol => "bol",
        }
    }
}

/// Who ships: the retailer (FBR) or bol.com (FBB). The marketplace's own enum: the list
/// filter, the stored column and the engine's checkpoint all use bol's spelling.
pub use bol::FulfilmentMethod;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_names_are_trimmed_and_bounded() {
        assert_eq!(
            ShopName::parse("  Bakkerij Ünal ").unwrap().as_str(),
            "Bakkerij Ünal"
        );
        assert!(ShopName::parse("   ").is_err());
        assert!(ShopName::parse(&"x".repeat(201)).is_err());
        assert!(ShopName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn client_ids_have_no_whitespace() {
        assert!(ClientId::parse("sandbox-1").is_ok());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("").is_err());
    }

    #[test]
    fn client_secrets_must_not_be_blank() {
        assert!(ClientSecret::parse(&SecretString::from("  ".to_owned())).is_err());
        assert!(ClientSecret::parse(&SecretString::from("secret-1".to_owned())).is_ok());
    }

    #[test]
    fn sync_interval_is_between_a_minute_and_a_week() {
        assert!(SyncInterval::parse(0).is_err());
        assert_eq!(SyncInterval::parse(1).unwrap().minutes(), 1);
        assert!(SyncInterval::parse(10_081).is_err());
        assert!(SyncInterval::parse(i64::MAX).is_err());
    }

    #[test]
    fn vocabularies_round_trip() {
        assert_eq!(FulfilmentMethod::parse("FBB").unwrap().as_str(), "FBB");
        assert!(FulfilmentMethod::parse("fbb").is_err());
        assert_eq!(Marketplace::parse("bol").unwrap().as_str(), "bol");
        assert!(Marketplace::parse("amazon").is_err());
    }
}
