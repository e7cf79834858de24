//! vaultkeep keeps an Obsidian vault alive: it records every version of every note and asset in
//! a content-addressed archive, and preserves the websites the notes reference.
//!
//! The binary (`src/main.rs`) is a thin layer over this library. Modules follow the data flow
//! of `shared/docs/design.md`: [`vault`] walks the files, [`note`] and [`links`] read them,
//! [`store`] keeps objects and records, [`scan`] ties them together.

#![forbid(unsafe_code)]

pub mod annotate;
pub mod cli;
pub mod compost;
pub mod config;
pub mod copies;
pub mod digest;
mod failpoint;
pub mod fetch;
pub mod frontmatter;
pub mod fsutil;
pub mod history;
pub mod linkcheck;
pub mod links;
pub mod note;
pub mod report;
pub mod restore;
pub mod scan;
pub mod snapshot;
pub mod store;
pub mod upkeep;
pub mod vault;
pub mod watch;
