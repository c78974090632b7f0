//! Log file tailing: discovery of files, reading them through rotations and truncations, and the
//! checkpoints that let a restart resume where the sink's acknowledgements left off.

pub(crate) mod checkpoint;
pub(crate) mod discovery;
pub(crate) mod file;
pub(crate) mod labels;
pub(crate) mod reader;
