//! OIDC for cta-data: discovery, the device flow, refresh without a daemon, and a locked
//! per-profile token store that many processes can share.
#![warn(missing_docs)]

pub mod flow;
pub mod session;
pub mod store;

pub use flow::{DevicePrompt, Provider};
pub use session::{OidcAgentSource, OidcSession, SessionSettings};
pub use store::{ProfileStore, Session};
