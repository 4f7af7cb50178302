//! Helm charts in image sets (`mirror.helm`): charts from repositories and local paths, the
//! images they deploy found as oc-mirror v2 finds them, and the charts carried across the air
//! gap.

pub mod chart;
pub mod fetch;
pub mod index;
pub mod render;
