//! A typed client for the bol.com Retailer API v10 shipments endpoints: tokens, the shipments
//! list and shipment details, push subscriptions and their signatures, with rate limiting from bol's headers, token reuse and retries.
//!
//! It knows nothing of Simba's database: token storage is the [`TokenCache`] trait and the rate
//! budgets are exported and imported as [`BucketSnapshot`]s. What bol answers is read by the
//! pure functions of [`parse`], which the fuzz targets in `crates/bol/fuzz` exercise. What it
//! does is counted through the `metrics` facade under the names in [`telemetry`].

mod client;
mod error;
mod limiter;
mod model;
pub mod parse;
pub mod signature;
mod subscriptions;
pub mod telemetry;
mod token;

pub use client::{Answer, Calls, Client, ClientConfig, Credentials, RetryPolicy};
pub use error::{Error, Failure};
pub use limiter::{BucketSnapshot, Group, GroupLimit, Limits, RateLimiter};
pub use model::{
    BillingDetails, Fulfilment, FulfilmentMethod, MAX_SHIPMENT_ID_LEN, Offer, Order, PAGE_SIZE,
    Product, ReducedShipment, ReducedShipmentItem, ReducedTransport, Shipment, ShipmentDetail,
    ShipmentDetails, ShipmentItem, ShipmentPage, Transport, TransportEvent,
};
pub use secrecy::{ExposeSecret, SecretString};
pub use signature::{PublicKeys, SignatureError, SignatureHeader};
pub use subscriptions::{
    ProcessState, ProcessStatus, SignatureKey, Subscription, SubscriptionRequest,
};
pub use token::{BoxFuture, CachedToken, MemoryTokenCache, TokenCache};
