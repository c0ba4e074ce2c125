//! Domain types: input parsed once into values that cannot be invalid. Each constructor is the
//! only place its rules live; failures name the field and say what is wrong.

mod account;
mod client_block;
mod run;
mod shop;
mod timestamp;
mod trusted_proxies;
pub mod webhook;

pub use account::{Email, Password, PersonName, Username};
pub use client_block::ClientBlock;
pub use run::{Mode, RunStatus, Trigger};
pub use shop::{ClientId, ClientSecret, FulfilmentMethod, Marketplace, ShopName, SyncInterval};
pub use timestamp::Timestamp;
pub use trusted_proxies::TrustedProxies;

use std::collections::BTreeMap;

/// Field name → messages, as API.md's `errors` member shows them.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValidationErrors(pub BTreeMap<String, Vec<String>>);

impl ValidationErrors {
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// Parses one field, recording its error under `field`; `None` when it failed.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|message| self.add(field, message)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One sentence for the problem's `detail`.
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .flat_map(|(field, messages)| messages.iter().map(move |m| format!("{field} {m}")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Rejects empty strings and control characters, and bounds the length in characters.
fn bounded_text(value: &str, max_chars: usize) -> Result<&str, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed)
}
