//! What pgtier knows of its backups: a backup's `manifest`, an env folder's `listing` (the
//! local backups, read from their manifests), and `retention`, the pure planner that assigns
//! tiers and decides what is kept.

pub mod listing;
pub mod manifest;
pub mod retention;
