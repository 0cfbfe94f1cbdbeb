//! The storage layer both index access methods share: buffer guards, GenericXLog write
//! guards, page and item helpers, and metapage version checks. Every page change after a
//! build goes through [`xlog::WalGuard`], so crash recovery and streaming replicas need no
//! custom redo code.

pub mod buffer;
pub mod bulk;
pub mod metapage;
pub mod page;
pub mod recent;
pub mod unguarded;
pub mod xlog;

pub use buffer::LockedBuffer;
pub use bulk::BulkWriter;
pub use xlog::WalGuard;
