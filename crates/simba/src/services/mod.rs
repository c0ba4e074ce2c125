//! What the edges share: one function per operation that the API, the dashboard and the CLI
//! all perform, returning errors of the domain that each edge answers in its own form.

pub mod accounts;
pub mod data_protection;
pub mod page_cache;
pub mod push;
pub mod shops;
pub mod webhooks;
