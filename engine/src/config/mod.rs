//! The configuration model: every directive of spec §1, where its value lands
//! (server-level settings, an MD section, or module-global settings), and the
//! per-MD merge of §1.3.
//!
//! The httpd glue calls [`ModConfig::apply`] for each directive with the raw
//! arguments and whether it sits inside an `<MDomain>` section; everything
//! else (parsing, validation, error texts) happens here.

mod apply;
mod checks;
mod directives;
mod model;
pub mod vhost;

pub use apply::*;
pub use checks::*;
pub use directives::*;
pub use model::*;
