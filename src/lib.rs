//! vaultkeep keeps an Obsidian vault alive: it records every version of every note and asset in
//! a content-addressed archive, and preserves the websites the notes reference.
//!
//! The binary (`src/main.rs`) is a thin layer over this library, whose only public module is
//! [`cli`]. Modules sit in layers; each imports only from layers below it (`tests/layers.rs`
//! checks this), from pure parsing at the bottom, through the edges that touch the world, to
//! the engines that tie them together and the command line on top:
//!
//! 1. **Foundations**: [`digest`] (sha256 names), [`fsutil`] (atomic writes), [`bytes`]
//!    (reading binary files), [`localtime`] (the local date), [`report`] (problems and
//!    messages), [`failpoint`] (test stops), [`config`] (typed settings).
//! 2. **Reading, pure**: [`frontmatter`] (the YAML block), [`links`] (extraction and Obsidian's
//!    resolution), [`note`] (what a note says, and whether its organization ended), [`warc`]
//!    (the WARC format: records, HTTP blocks, SURT keys).
//! 3. **Edges**: [`vault`] (walk and stat), [`fetch`] (the only network code), [`browser`]
//!    (headless Chromium, whose every request vaultkeep answers), [`store`] (the archive:
//!    every file of it behind one API).
//! 4. **Engines**: [`scan`] (record versions), [`history`] (versions and recover),
//!    [`snapshot`] (capture websites, offline copies), [`copies`] (a URL's local copy),
//!    [`annotate`] (minimal note edits).
//! 5. **Work on notes and the archive**: [`linkcheck`], [`compost`], [`restore`],
//!    [`profiles`] (homepage pictures), [`remote`] (push and pull through S3-compatible
//!    storage), [`upkeep`] (verify and gc), [`wacz`] (export and import of WACZ and WARC
//!    files).
//! 6. **The daemon**: [`watch`].
//! 7. **The command line**: [`cli`] (arguments and rendering only).

#![forbid(unsafe_code)]
// The docs are built with `--document-private-items` (CI does): the map above links to the
// crate's private modules on purpose.
#![allow(rustdoc::private_intra_doc_links)]

// 1. Foundations
pub(crate) mod bytes;
pub(crate) mod config;
pub(crate) mod digest;
mod failpoint;
pub(crate) mod fsutil;
pub(crate) mod localtime;
pub(crate) mod report;
// 2. Reading, pure
pub(crate) mod frontmatter;
pub(crate) mod links;
pub(crate) mod note;
pub(crate) mod warc;
// 3. Edges
pub(crate) mod browser;
pub(crate) mod fetch;
pub(crate) mod store;
pub(crate) mod vault;
// 4. Engines
pub(crate) mod annotate;
pub(crate) mod copies;
pub(crate) mod history;
pub(crate) mod scan;
pub(crate) mod snapshot;
// 5. Work on notes and the archive
pub(crate) mod compost;
pub(crate) mod linkcheck;
pub(crate) mod profiles;
pub(crate) mod remote;
pub(crate) mod restore;
pub(crate) mod upkeep;
pub(crate) mod wacz;
// 6. The daemon
pub(crate) mod watch;
// 7. The command line
pub mod cli;
