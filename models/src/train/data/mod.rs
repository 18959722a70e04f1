//! Training data sources. `synthetic`: procedurally generated clips (the from-scratch run).
pub mod synthetic;
