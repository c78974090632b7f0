//! Wire codecs for the protocols Tarsier speaks with the rest of the ecosystem. Each codec turns
//! bytes into the crate's own types and back, with errors that say what was wrong.

pub mod loki_push;
pub mod remote_write;
pub mod selector_text;
