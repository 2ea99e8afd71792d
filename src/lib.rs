//! pgtier: PostgreSQL backups in daily/weekly/monthly tiers, encrypted, synced to S3 with a
//! storage class per tier, proven by restore drills, and restorable after the host is gone.
//!
//! Layers, each importing only from itself and the ones below it; the folders are the layers
//! (`tests/layers.rs` checks every `crate::` import against this order, and that the parts
//! reach only the leaves):
//! - `cli`: flags, printing, the words for each error's remedy; the only layer that knows clap;
//! - `ops`: what a command does (`run` strings the others together; `backup`, `sync`, `prune`,
//!   `restore` with the roles and the app containers, `verify` (a drill is a restore), `audit`,
//!   `report`, `adopt`, `doctor`, `fleet` (every env under a prefix, from the bucket alone));
//! - `tell`: the one hook operations report through (`outcome`), and what it tells: `alerts`,
//!   the per-command message (`notify`), `metrics`;
//! - `context`: one command's door to each env, read once and updated in place;
//! - `plan`: the pure plans, local (what prune deletes) and off-site (what sync copies);
//! - `remote`: opening a destination, its layout, prefix store, catalog, thaw, and the lease an
//!   agent holds on an env in the bucket (which fences every deletion);
//! - `records`: an env folder's `listing`, the `manifest`, the `retention` planner;
//! - parts: `config`, `postgres`, `pipeline`, `crypto`, `store` (S3, file, memory; it takes its
//!   own options, not the configuration), `vocab` (shared data types);
//! - leaves: `names`, `error` (with the store's `StoreError`), `fsutil`, `scratch`, `signals`,
//!   `ui`, `run_lock`, `fault`, `runtime` (the one async runtime).

pub mod cli;
pub mod config;
pub mod context;
pub mod crypto;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod names;
pub mod ops;
pub mod pipeline;
pub mod plan;
pub mod postgres;
pub mod records;
pub mod remote;
pub mod run_lock;
pub mod runtime;
pub mod scratch;
pub mod signals;
pub mod store;
pub mod tell;
pub mod ui;
pub mod vocab;

pub use error::{Error, Result};
