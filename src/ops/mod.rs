//! The operations: what each command does to an env, over the command's `context` (each env read
//! once and updated in place), reporting through `tell`. The nightly `run` strings the others
//! together; `cli` is the only layer above.

pub mod adopt;
pub mod audit;
pub mod backup;
pub mod discover;
pub mod doctor;
pub mod fleet;
pub mod prune;
pub mod report;
pub mod restore;
pub mod run;
pub mod sync;
pub mod verify;
