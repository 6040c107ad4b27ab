//! Export: JSON-lines events, the run summary and the HTML report. Shapes output; never decides
//! anything.

pub mod calls;
pub mod community_id;
pub mod ecs;
pub mod eval;
pub mod events;
pub mod gate;
pub mod http;
pub mod json;
pub mod lines;
pub mod metrics;
pub mod record;
pub mod report;
pub mod sink;
pub mod summary;
pub mod webconfig;
