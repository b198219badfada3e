//! ibc-relay: delivers proofs to consumer chains over IBC, the service acting
//! as an ICS-06 solo machine.
//!
//! Not implemented yet: this crate is filled by the two IBC issues. It will
//! depend on [`aggregator`] for records and proofs only.
