//! Telling someone: `outcome` is the one hook the operations report through; it sends `alerts`
//! (webhook, command) at once, one `notify` message per command to the native channels, and
//! records the state and textfile that monitoring reads (`metrics`).

pub mod alerts;
pub mod metrics;
pub mod notify;
pub mod outcome;
