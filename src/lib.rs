//! imageset-operator: oc-mirror v2's image sets, reconciled in the cluster or run from the command line.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod controller;
pub mod copy;
pub mod flight;
pub mod helm;
pub mod image;
pub mod pipeline;
pub mod plan;
pub mod registry;
pub mod release;
pub mod render;
pub mod shard;
pub mod telemetry;
