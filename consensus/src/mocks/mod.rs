//! Byzantine test actors (cargo feature `mocks`, enabled only by this crate's own tests): never
//! in a production build. Each fault is one variant of one actor, in a file of its own.

mod proposer;

pub(crate) use proposer::Byzantine;
pub use proposer::Proposer;
