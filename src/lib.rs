//! pgtier: PostgreSQL backups in daily/weekly/monthly tiers, encrypted, synced to S3 with a
//! storage class per tier, proven by restore drills, and restorable after the host is gone.
//!
//! Layers, each importing only from the ones below it (no import cycles between top-level
//! modules; `python3 ../shared/tools/modgraph.py src` checks, and `tests/layers.rs` checks that
//! the parts reach only the leaves):
//! - `cli`: flags, printing, the words for each error's remedy; the only layer that knows clap;
//! - operations: `run`, `backup`, `restore`, `verify`, `sync`, `prune`, `audit`, `adopt`,
//!   `globals`, `report`, `doctor`, over `context` (one command's view of each env, read once
//!   and updated in place) and `outcome` (the one hook to `alerts`, `notify` and `metrics`);
//! - the remote: `remote` (opening a destination, layout, prefix store, catalog, thaw);
//! - records: `catalog`, `manifest`, `retention`;
//! - parts: `config`, `postgres`, `pipeline`, `crypto`, `store` (S3, file, memory; it takes its
//!   own options, not the configuration);
//! - leaves: `vocab` (shared data types), `names`, `error` (with the store's `StoreError`),
//!   `fsutil`, `scratch`, `signals`, `ui`, `lock`, `fault`, `runtime` (the one async runtime).

pub mod adopt;
pub mod alerts;
pub mod apps;
pub mod audit;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod context;
pub mod crypto;
pub mod doctor;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod globals;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod outcome;
pub mod pipeline;
pub mod postgres;
pub mod prune;
pub mod remote;
pub mod report;
pub mod restore;
pub mod retention;
pub mod run;
pub mod runtime;
pub mod scratch;
pub mod signals;
pub mod store;
pub mod sync;
pub mod ui;
pub mod verify;
pub mod vocab;

pub use error::{Error, Result};
