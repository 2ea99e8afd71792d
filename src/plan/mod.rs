//! The plans: pure functions from what pgtier knows (the listing, a destination's catalog, the
//! policy, the clock) to what should happen, each action with its reason. The operations carry
//! them out (`prune`, `sync`) and `audit` reports them; none of them touches a file or a store.

pub mod local;
pub mod offsite;
