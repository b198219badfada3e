//! The end-to-end test harness: a real regtest node ([`node::RegtestNode`])
//! and helpers shared by the workspace's end-to-end tests.

pub mod chain;
pub mod consumer;
pub mod cost;
pub mod follow;
pub mod forge;
pub mod golden;
pub mod network;
pub mod node;
pub mod scenarios;
pub mod tls;
