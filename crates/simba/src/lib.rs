//! Simba keeps a local, queryable copy of every shipment of every shop a seller connects,
//! crawled from the marketplace within its rate limits, and serves it through a REST API.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod crypto;
mod dashboard;
pub mod demo;
pub mod domain;
pub mod engine_metrics;
pub mod error;
mod http_server;
pub mod services;
pub mod state;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod web;
pub mod webhooks;
