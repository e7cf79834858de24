//! The command line: arguments (clap), dispatch, and how results are shown. Each command's
//! work is a library call; this layer parses, prints and maps outcomes to exit codes.

mod archive;
mod daemon;
mod files;
mod marks;
mod output;
mod remote;
mod snapshots;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

pub use output::Exit;

/// vaultkeep keeps an Obsidian vault alive: every version of every note and asset in a
/// content-addressed archive, and offline copies of the websites the notes reference.
#[derive(Debug, Parser)]
#[command(name = "vaultkeep", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// The vault folder [default: ./vault, or `vault` in the config file]
    #[arg(long, global = true, value_name = "DIR", env = "VAULTKEEP_VAULT")]
    pub vault: Option<PathBuf>,
    /// The archive folder [default: ./archive, or `archive` in the config file]
    #[arg(long, global = true, value_name = "DIR", env = "VAULTKEEP_ARCHIVE")]
    pub archive: Option<PathBuf>,
    /// Config file [default: ./vaultkeep.toml if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 all done; 1 finished, but some items failed (listed); \
2 could not run (bad arguments, missing vault, archive locked or unreadable).";

/// The commands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Record new versions of notes and assets, and report links, composted profiles and problems
    #[command(
        long_about = "One pass over the vault: every note and asset whose content is new is stored in \
the archive (sha256-addressed) and a version is recorded (created, modified, renamed, deleted). Unchanged \
files are recognised by size, mtime and inode and not read again, and a folder whose times did not \
change since the last scan is not listed again (its listing is kept in the archive's cache). Reports notes, assets, links by kind, \
external URLs, unresolved and ambiguous links, composted profiles and files that could not be read. While `vaultkeep watch` runs (it records every change itself), scan reports and records nothing, and looks only at the paths the daemon says changed (it vouches for the rest; --every-file looks at every file)."
    )]
    Scan(ScanArgs),
    /// List the recorded versions of one vault file, deleted files included
    History(HistoryArgs),
    /// Bring a recorded version of a vault file back
    Recover(RecoverArgs),
    /// Run as a daemon: record every change of the vault, snapshot new URLs, run scheduled work
    #[command(
        long_about = "Scan once, then follow file system events: every save, new attachment, rename and \
deletion is recorded, and every new external URL is queued for a snapshot, taken in the background. \
Scheduled work ([watch] in the config): re-snapshots of URLs whose newest snapshot is older than \
resnapshot_after (30d), link checks and composting (daily). One daemon per archive; SIGINT or SIGTERM \
stop it cleanly, and queued snapshots survive a restart. Logs go to stderr or --log-file."
    )]
    Watch(WatchArgs),
    /// Whether the daemon runs, what it did lately, and what the archive holds
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Preserve composted profiles' websites and mark the profiles with their copies
    #[command(
        long_about = "For each composted profile (an `end` in the past, or marked composted), make sure \
every external URL it references has a snapshot (its `url` site and documentation crawled), then add \
properties to its frontmatter: archived_urls, archived_dates and archived_copies (one entry per copy, \
same order; the copy is a file:/// link, or a vault link when the copy lives inside the vault), and \
archive_missing for URLs that could not be captured. With Chromium installed, the organization's \
last look is kept too: its homepage, made from the snapshot, saved as \
assets/<note>-homepage-<date>.png and linked by archived_screenshot. Only those properties change; \
--dry-run prints the diff and takes no snapshots."
    )]
    Compost(CompostArgs),
    /// Homepage pictures for profiles
    Profiles {
        /// What to do with the profiles.
        #[command(subcommand)]
        command: ProfilesCommand,
    },
    /// Check external links, or point dead ones at their local copies
    Links {
        /// What to do with the links.
        #[command(subcommand)]
        command: LinksCommand,
    },
    /// Share the archive with other devices through S3-compatible storage ([remote])
    #[command(
        long_about = "One archive for every device and for a collective: `push` uploads the objects \
and records the remote lacks, `pull` brings in what other devices recorded (their versions, \
their snapshots with offline copies rebuilt here), `status` says what is ahead and behind, \
`verify` reads the whole remote back. Devices never write the same key: objects are \
content-addressed and created only if absent, each device's records are its own append-only \
segments. Configure [remote] url (s3://bucket/prefix), endpoint, region and path_style in \
vaultkeep.toml; credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile \
of ~/.aws/credentials. Exit 2 for bad credentials, a missing bucket, a skewed clock, a full or \
read-only bucket, or an unreachable server, with what to do."
    )]
    Remote {
        /// What to do with the remote.
        #[command(subcommand)]
        command: RemoteCommand,
    },
    /// Work on the archive itself
    Archive {
        /// What to do with the archive.
        #[command(subcommand)]
        command: ArchiveCommand,
    },
}

// `vaultkeep remote ...`
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum RemoteCommand {
    /// Upload the objects and records the remote lacks
    Push {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Bring in what other devices recorded, and rebuild their snapshots' offline copies
    Pull {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// What is ahead and behind on each side, and files whose devices disagree
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Read every remote object back and check every remote record's references
    Verify {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete remote objects no record names: marked by one run, deleted by a run at least
    /// the grace period later, if still unnamed and older than the grace period
    Gc {
        /// The grace period (30s, 12h, 1d, 2w...)
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        grace: crate::config::Period,
        /// Say what would be deleted and marked; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

// `vaultkeep profiles ...`
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ProfilesCommand {
    /// Take each profile's homepage picture into the vault
    #[command(
        long_about = "Open each profile's `url` (a note with an http(s) `url` property) in headless \
Chromium and save what a visitor first sees (a 1280 x 800 window) as assets/<note>-homepage.png \
in the vault. A profile without `image` gets `image: \"[[assets/<note>-homepage.png]]\"`; an existing \
`image` is never changed. A picture already there is recorded in the archive before it is replaced. \
Every request goes through vaultkeep's fetcher (private addresses refused unless --allow-private). \
The next scan records the pictures as new assets."
    )]
    Screenshot(ProfileScreenshotArgs),
}

// `vaultkeep profiles screenshot`
#[derive(Debug, Args)]
pub struct ProfileScreenshotArgs {
    /// Profiles (paths in the vault); default: every profile
    #[arg(value_name = "NOTE")]
    pub notes: Vec<String>,
    /// Only profiles without a picture (no `image`, or one whose file is missing)
    #[arg(long)]
    pub missing: bool,
    /// Show what would be written (pictures, and `image` edits as a diff); open no browser
    #[arg(long)]
    pub dry_run: bool,
    /// Allow loopback and private addresses
    #[arg(long)]
    pub allow_private: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

// `vaultkeep scan`
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Record the deletion of more than half of the vault's files at once (refused otherwise:
    /// an unmounted drive or a mistyped --vault looks the same)
    #[arg(long)]
    pub accept_deletions: bool,
    /// Look at every file and read every folder: beside the running daemon, do not ask it
    /// which paths changed since it last recorded (it vouches for the rest, and only those
    /// are looked at); and list every folder again, rather than those whose times changed
    /// since the last scan
    #[arg(long)]
    pub every_file: bool,
    /// Print one JSON object instead of the summary
    #[arg(long)]
    pub json: bool,
}

// `vaultkeep history`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The file, relative to the vault (e.g. `ecosystem/cohere/profiles/Ouishare.md`)
    pub path: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

// `vaultkeep recover`
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The file, relative to the vault
    pub path: String,
    /// Which version (see `history`) [default: the newest]
    #[arg(long, value_name = "V")]
    pub version: Option<usize>,
    /// Write here instead of the vault path (`-` for standard output)
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing, different file
    #[arg(long)]
    pub force: bool,
}

// `vaultkeep watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Append logs to this file instead of stderr
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Allow loopback and private addresses in snapshots and link checks
    #[arg(long)]
    pub allow_private: bool,
}

// `vaultkeep compost`
#[derive(Debug, Args)]
pub struct CompostArgs {
    /// Show the edits as a unified diff; change nothing, capture nothing (works beside a
    /// running daemon)
    #[arg(long)]
    pub dry_run: bool,
    /// Allow loopback and private addresses
    #[arg(long)]
    pub allow_private: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

// `vaultkeep links ...`
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum LinksCommand {
    /// Check every external URL of the vault and record the results
    #[command(
        long_about = "Check every external URL of the vault (HEAD, falling back to GET), record each \
result in the archive (checks.jsonl), and classify each URL from its history: alive; dead once it \
failed hard (404, 410, no such host, connection refused) on at least --dead-after checks spread over at \
least --min-gap; unknown otherwise (429, 5xx, timeouts and TLS errors never make a URL dead). Exit 1 if \
any URL is dead."
    )]
    Check(CheckArgs),
    /// Point dead links at their local copies, keeping the original URLs
    #[command(
        long_about = "Point every link to a dead URL that has a local copy at that copy, keeping the \
original URL: ` ([archived DATE](LINK))` after a link in a note's body, a `<property>_archived` \
property beside a frontmatter URL. A URL is dead by the same rule the last `links check` judged with \
(so right after a check that reports N dead URLs, restore acts on those N), unless --dead-after or \
--min-gap give another. --dry-run prints the diff, writes nothing and works while `watch` runs."
    )]
    Restore(RestoreArgs),
}

// `vaultkeep links restore`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Show the edits as a unified diff; change nothing (works beside a running daemon)
    #[arg(long)]
    pub dry_run: bool,
    /// When a URL is dead [default: what the last `links check` was given, else the config]
    #[command(flatten)]
    pub rule: RuleArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

// When a URL counts as dead, on the command line.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Hard failures before a URL counts as dead [default: 2, or `[links] dead_after`]
    #[arg(long, value_name = "N")]
    pub dead_after: Option<usize>,
    /// Time the hard failures must span, e.g. 12h, 1d, 1w [default: 1d, or `[links] min_gap`]
    #[arg(long, value_name = "DURATION")]
    pub min_gap: Option<crate::config::Period>,
}

// `vaultkeep links check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Allow loopback and private addresses
    #[arg(long)]
    pub allow_private: bool,
    /// When a URL is dead
    #[command(flatten)]
    pub rule: RuleArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

// `vaultkeep archive ...`
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ArchiveCommand {
    /// Capture web pages with their requisites (or a same-site crawl) as offline copies
    #[command(
        long_about = "Capture web pages into the archive, each as a snapshot: the page, everything a \
browser needs to render it (style sheets, images, fonts, scripts, icons, frames), from any host, and with \
--depth a crawl of the pages under the root's host and folder. Each snapshot gets an offline copy whose \
entry page opens from the file system. A NOTE (a path in the vault) means every external URL it \
references: its frontmatter `url` and documentation sites (handbook, docs, wiki) are crawled \
`[snapshot] depth` hops (default 3), other links captured alone.

Pages built by scripts (little text, scripts that build the body) are rendered in headless \
Chromium when it is installed (`[snapshot] browser = \"auto\"`); --browser renders every page. A \
rendered page keeps its raw response, plus the DOM after its scripts ran (the offline copy is made \
from it, scripts removed), a full-page screenshot and a PDF. Every request the browser makes goes \
through vaultkeep's own fetcher: the private-address guard, robots.txt and the limits hold for \
the page's scripts too."
    )]
    Snapshot(SnapshotArgs),
    /// List snapshots, newest first
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one snapshot's captures and failures
    Show {
        /// The snapshot's id (or a unique beginning of it)
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Export snapshots as one WACZ file (WARC 1.1, CDXJ index, pages with their text)
    #[command(
        long_about = "Write snapshots as one WACZ 1.1.1 file, the web-archiving world's package: \
archive/<id>.warc.gz (WARC 1.1: a request and a response record per capture and per redirect, revisit \
records where a payload repeats), indexes/index.cdx (CDXJ, SURT order), pages/pages.jsonl (each page's \
title and text, for search) and datapackage.json with every member's sha256. ReplayWeb.page and pywb \
open it. Choose the snapshots by id, by URL (every snapshot of it), by note (every snapshot of every URL \
the note references) or all of them."
    )]
    Export(ExportArgs),
    /// Import WARC and WACZ files (wget, Browsertrix, ArchiveBox, vaultkeep) as snapshots
    #[command(
        long_about = "Add .warc, .warc.gz and .wacz files made by other tools (wget --warc-file, \
Browsertrix, ArchiveBox) or by `archive export` to the archive: each WARC file becomes a snapshot with \
its captures (bodies decoded and stored once, shared with what the archive holds) and an offline copy. \
Records that cannot be used (malformed, truncated, of other types) are listed and skipped. Exit 1 if \
any were skipped."
    )]
    Import {
        /// The files
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every object and check every reference; exit 1 on any damage
    Verify {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove objects nothing references, and stale temp files
    Gc {
        /// Show what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List every object: sha256, size and where its bytes are (its own file, or a pack)
    #[command(
        long_about = "List every object of the archive: its sha256, its size and where its bytes \
are. Most objects are files of their own, objects/ab/ab12…; a scan that stores many new files at \
once (a first scan) appends the small ones to one pack, objects/packs/<name>.pack, since creating \
a file per object costs more than the rest of the scan. `archive cat` prints any object, `archive \
unpack` turns packs back into files of their own."
    )]
    Objects {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print one object's bytes, checked against its sha256 (`archive cat <sha256> | sha256sum`)
    Cat {
        /// The object's sha256, or a unique beginning of it (8 hex digits or more)
        object: String,
    },
    /// Write every packed object as a file of its own, then remove the packs
    Unpack {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

// `vaultkeep archive export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The WACZ file to write
    #[arg(long, value_name = "FILE")]
    pub wacz: PathBuf,
    /// Snapshot ids (or unique beginnings of them)
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Every snapshot of this URL (as its root, or holding a capture of it)
    #[arg(long, value_name = "URL")]
    pub url: Vec<String>,
    /// Every snapshot of every external URL this note references (a path in the vault)
    #[arg(long, value_name = "NOTE")]
    pub note: Vec<String>,
    /// Every snapshot of the archive
    #[arg(long)]
    pub all: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

// `vaultkeep archive snapshot`
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// URLs to capture, or notes (paths in the vault) whose external URLs to capture
    #[arg(value_name = "URL|NOTE")]
    pub targets: Vec<String>,
    /// Every external URL of the vault, each once
    #[arg(long)]
    pub all: bool,
    /// Follow links this many hops under the root's host and folder (default: 0 for a URL;
    /// `[snapshot] depth` for a note's `url` and documentation sites)
    #[arg(long, value_name = "N")]
    pub depth: Option<u32>,
    /// Most pages per snapshot [default: 500, or `[snapshot] max_pages`]
    #[arg(long, value_name = "N")]
    pub max_pages: Option<usize>,
    /// Most URLs fetched per snapshot, pages and resources together; the rest are recorded
    /// as failures with reason `limit` [default: 5000, or `[snapshot] max_resources`]
    #[arg(long, value_name = "N")]
    pub max_resources: Option<usize>,
    /// Most bytes received per snapshot [default: 1073741824 (1 GiB), or `[snapshot]
    /// max_total_bytes`]
    #[arg(long, value_name = "BYTES")]
    pub max_total_bytes: Option<u64>,
    /// Allow loopback and private addresses (off by default: vaultkeep does not probe your network)
    #[arg(long)]
    pub allow_private: bool,
    /// Do not obey robots.txt
    #[arg(long)]
    pub ignore_robots: bool,
    /// Render every page in headless Chromium (exit 2 if there is none) [default: only pages
    /// that look built by scripts, when Chromium is installed: `[snapshot] browser`]
    #[arg(long, conflicts_with = "no_browser")]
    pub browser: bool,
    /// Never use the browser
    #[arg(long)]
    pub no_browser: bool,
    /// A full-page screenshot of every page, also of pages captured without the browser
    /// (taken from what was captured) [default: `[snapshot] screenshots`]
    #[arg(long)]
    pub screenshot: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Paths and settings every command works with.
pub struct Context {
    /// The vault folder.
    pub vault: PathBuf,
    /// The archive folder.
    pub archive: PathBuf,
    /// The loaded configuration.
    pub config: Config,
    /// Whether stderr is a terminal (progress bars).
    pub interactive: bool,
}

impl Context {
    fn new(cli: &Cli) -> anyhow::Result<Context> {
        let config = Config::load(cli.config.as_deref())?;
        let vault = cli
            .vault
            .clone()
            .or_else(|| config.vault.clone())
            .unwrap_or_else(|| "vault".into());
        let archive = cli
            .archive
            .clone()
            .or_else(|| config.archive.clone())
            .unwrap_or_else(|| "archive".into());
        Ok(Context {
            vault,
            archive,
            config,
            interactive: std::io::IsTerminal::is_terminal(&std::io::stderr()) && !cli.quiet,
        })
    }
}

/// Runs a parsed command line and returns the process's exit code.
pub fn run(cli: Cli) -> ExitCode {
    let outcome = Context::new(&cli).and_then(|ctx| match &cli.command {
        Command::Scan(args) => files::scan(&ctx, args),
        Command::History(args) => files::history(&ctx, args),
        Command::Recover(args) => files::recover(&ctx, args),
        Command::Archive { command } => archive::run(&ctx, command),
        Command::Remote { command } => remote::run(&ctx, command),
        Command::Compost(args) => marks::compost(&ctx, args),
        Command::Profiles { command } => match command {
            ProfilesCommand::Screenshot(args) => marks::profile_pictures(&ctx, args),
        },
        Command::Watch(args) => daemon::watch(&ctx, args),
        Command::Status { json } => daemon::status(&ctx, *json),
        Command::Links { command } => match command {
            LinksCommand::Check(args) => marks::check(&ctx, args),
            LinksCommand::Restore(args) => marks::restore(&ctx, args),
        },
    });
    match outcome {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("vaultkeep: {e:#}");
            Exit::CannotRun.into()
        }
    }
}

/// Sets up `tracing`: on stderr (or the daemon's `--log-file`); warnings by default (the
/// daemon: info), `-v` info, `-vv` debug, `-q` errors; `RUST_LOG` wins.
pub fn init_logging(cli: &Cli) -> anyhow::Result<()> {
    let daemon = matches!(cli.command, Command::Watch(_));
    let default = match (cli.quiet, cli.verbose, daemon) {
        (true, _, _) => "error",
        (false, 0, false) => "warn",
        (false, 0, true) | (false, 1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("vaultkeep={default},warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let log_file = match &cli.command {
        Command::Watch(args) => args.log_file.clone(),
        _ => None,
    };
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| anyhow::anyhow!("cannot open the log file {}: {e}", path.display()))?;
            let _ = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
        None => {
            // Colours only on a terminal: journald and redirected logs get plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let _ = builder
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
                .try_init();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Each subcommand's arguments are built only when it is used (`defer`), after its own
    /// texts: a doc comment on an `Args` struct or a `Subcommand` enum (or one flattened into
    /// it) would then replace them, so those carry plain comments.
    #[test]
    fn every_command_keeps_its_own_texts_once_its_arguments_are_built() {
        let texts = |cmd: &clap::Command| {
            (
                cmd.get_name().to_string(),
                cmd.get_about().map(ToString::to_string),
                cmd.get_long_about().map(ToString::to_string),
            )
        };
        let listed: Vec<_> = Cli::command().get_subcommands().map(texts).collect();
        let mut cli = Cli::command();
        cli.build();
        // (Building adds `help`.)
        let built: Vec<_> = cli
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .map(texts)
            .collect();
        assert_eq!(built, listed);
        let scan = cli.find_subcommand("scan").unwrap();
        assert!(
            scan.get_arguments()
                .any(|a| a.get_id() == "accept_deletions")
        );
        let nested: Vec<_> = cli
            .get_subcommands()
            .flat_map(|c| c.get_subcommands())
            .filter(|c| c.get_name() != "help")
            .map(texts)
            .collect();
        assert!(nested.len() >= 10, "{nested:?}");
        for (name, about, _) in nested {
            let about = about.unwrap_or_default();
            assert!(
                !about.is_empty() && !about.starts_with('`'),
                "{name}: {about}"
            );
        }
    }
}
