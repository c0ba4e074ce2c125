//! Seller account fields: username, email, names, password rules.

use secrecy::{ExposeSecret, SecretString};

use super::bounded_text;

/// Django's rule: up to 150 letters, digits and `@ . + - _`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(value: &str) -> Result<Username, String> {
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.chars().count() > 150 {
            return Err("must be at most 150 characters".into());
        }
        if !value
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
        {
            return Err("may contain only letters, digits and @ . + - _".into());
        }
        Ok(Username(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, lower-cased so that uniqueness and login ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Email, String> {
        let value = value.trim();
        let invalid = || "must be a valid email address".to_owned();
        if value.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '@');
        if !(domain_ok && local_ok) {
            return Err(invalid());
        }
        Ok(Email(value.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// First or last name: optional, so empty is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(value: &str) -> Result<PersonName, String> {
        if value.trim().is_empty() {
            return Ok(PersonName(String::new()));
        }
        bounded_text(value, 150).map(|v| PersonName(v.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that satisfies the rules; only ever held as a secret.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// Bounds the work argon2 does for one request.
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(value: &SecretString, username: &str) -> Result<Password, String> {
        let plain = value.expose_secret();
        if plain.chars().count() < Self::MIN_CHARS {
            return Err(format!("must be at least {} characters", Self::MIN_CHARS));
        }
        if plain.len() > Self::MAX_BYTES {
            return Err(format!("must be at most {} bytes", Self::MAX_BYTES));
        }
        if plain.to_lowercase() == username.to_lowercase() {
            return Err("must not be the username".into());
        }
        Ok(Password(value.clone()))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn usernames_follow_django_rules() {
        assert!(Username::parse("anna.v+shop_1@x-y").is_ok());
        assert!(Username::parse("Zoë").is_ok());
        assert!(Username::parse("").is_err());
        assert!(Username::parse("has space").is_err());
        assert!(Username::parse(&"a".repeat(151)).is_err());
    }

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            Email::parse(" Anna@Example.COM ").unwrap().as_str(),
            "anna@example.com"
        );
        for bad in [
            "",
            "anna",
            "anna@",
            "@example.com",
            "anna@example",
            "a b@example.com",
            "anna@ex..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn passwords_need_eight_characters_and_differ_from_the_username() {
        assert!(Password::parse(&secret("short"), "anna").is_err());
        assert!(Password::parse(&secret("AnnaShop1"), "annashop1").is_err());
        assert!(Password::parse(&secret("correct horse"), "anna").is_ok());
        assert!(Password::parse(&secret(&"x".repeat(1025)), "anna").is_err());
    }

    #[test]
    fn names_may_be_empty_but_not_too_long() {
        assert_eq!(PersonName::parse("  ").unwrap().as_str(), "");
        assert_eq!(PersonName::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(PersonName::parse(&"x".repeat(151)).is_err());
    }
}
