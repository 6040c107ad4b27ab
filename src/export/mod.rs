//! Export: JSON-lines events and the run summary. Shapes output; never decides anything.

pub mod events;
pub mod gate;
pub mod http;
pub mod metrics;
pub mod summary;
pub mod webconfig;
