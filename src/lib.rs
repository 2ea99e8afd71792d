//! pgtier: PostgreSQL backups in daily/weekly/monthly tiers, encrypted, synced to S3 with a
//! storage class per tier, proven by restore drills, and restorable after the host is gone.
//!
//! Layers: `cli` (thin commands) -> operations (`backup`, `restore`, `retention`, ...) ->
//! parts (`config`, `pipeline`, `crypto`, `postgres`, `catalog`).

pub mod adopt;
pub mod alerts;
pub mod apps;
pub mod audit;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod globals;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod offsite;
pub mod pipeline;
pub mod postgres;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod run;
pub mod scratch;
pub mod signals;
pub mod store;
pub mod sync;
pub mod ui;
pub mod verify;

pub use error::{Error, Result};
