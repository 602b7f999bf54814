//! The heart of cta-data: the [`StorageBackend`] trait, [`RemotePath`], [`Entry`], the
//! [`Error`] type, the layered configuration and the transfer engine every backend shares.
#![warn(missing_docs)]

pub mod backend;
pub mod checksum;
pub mod config;
pub mod credentials;
pub mod entry;
pub mod error;
pub mod path;
pub mod retry;
pub mod share;
pub mod tape;
pub mod tpc;
pub mod transfer;

pub use backend::{
    ByteRange, ByteStream, Capabilities, Download, EntryStream, GetOptions, PutOptions, PutOutcome,
    ReadSession, ServerNotes, StorageBackend, Support, Upload,
};
pub use checksum::{Adler32, Checksum, ChecksumAlgorithm};
pub use entry::{Entry, EntryKind, Locality};
pub use error::{AuthProblem, BoxError, Error, Result};
pub use path::RemotePath;
pub use retry::{RetryPolicy, Retrying};
pub use share::ShareOps;
pub use tape::TapeOps;
pub use tpc::ServerCopyOps;
