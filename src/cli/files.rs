//! `scan`, `history`, `recover`: the vault's files and their versions.

use std::path::Path;

use anyhow::Context as _;

use super::output::{self, Exit, say};
use super::{Context, HistoryArgs, RecoverArgs, ScanArgs};
use crate::history::{self, Output, RecoverError};
use crate::report::human_bytes;
use crate::scan::{ScanOptions, ScanReport, scan as scan_vault};
use crate::store::{self, Store};

/// The scan options the config and terminal call for.
pub(crate) fn scan_options(ctx: &Context) -> ScanOptions {
    let mut options = ScanOptions {
        progress: ctx.interactive,
        ..ScanOptions::default()
    };
    options.max_note_bytes = ctx.config.scan.max_note_bytes.get();
    options
}

pub(crate) fn scan(ctx: &Context, args: &ScanArgs) -> anyhow::Result<Exit> {
    crate::scan::check_vault(&ctx.vault)?;
    let mut options = ScanOptions {
        accept_deletions: args.accept_deletions,
        reread_folders: args.every_file,
        ..scan_options(ctx)
    };
    let (store, _lock) = match Store::open_for_writing(&ctx.archive, "scan") {
        Ok((store, lock)) => (store, Some(lock)),
        // The daemon records every change as it happens: report what is there, record nothing.
        Err(e @ store::Error::Locked { .. }) if is_daemon(&e) => {
            if args.accept_deletions {
                return Err(anyhow::Error::from(e)
                    .context("--accept-deletions records deletions: stop the daemon first"));
            }
            tracing::warn!(
                "{e}: it records this vault's changes as they happen; this scan reports and records nothing"
            );
            options.record = false;
            let store = Store::open_for_preview(&ctx.archive)?;
            if !args.every_file {
                ask_the_daemon(&store, &mut options);
            }
            (store, None)
        }
        Err(e) => return Err(e.into()),
    };
    let scan = scan_vault(&ctx.vault, &store, &options)?;
    let report = if args.json {
        scan.report()?
    } else {
        scan.brief()?
    };
    tracing::debug!("reported");
    if args.json {
        output::json(&report)?;
    } else {
        print_scan(&ctx.vault, &report);
    }
    Ok(Exit::failed_if(report.totals.problems > 0))
}

/// A preview beside the running daemon asks it which paths changed since it last recorded them,
/// and looks at those only: the daemon vouches for the rest (see `watch::vouch`). When there is
/// no daemon, or it cannot vouch (said at `-v`), the preview looks at every file.
pub(crate) fn ask_the_daemon(store: &Store, options: &mut ScanOptions) {
    if store.lock_holder().is_none_or(|h| h.command != "watch") {
        return;
    }
    match crate::watch::vouch::ask(store) {
        Ok(changed) => {
            tracing::debug!(
                paths = changed.len(),
                "the daemon vouches for every other file"
            );
            options.changed_paths = Some(changed);
        }
        Err(why) => tracing::info!("{why}; looking at every file"),
    }
}

/// Whether the archive is locked by the daemon.
fn is_daemon(e: &store::Error) -> bool {
    matches!(e, store::Error::Locked { holder, .. } if holder.command == "watch")
}

fn print_scan(vault: &Path, r: &ScanReport) {
    let links: usize = r.summary.links.values().sum();
    say!(
        "Scanned {}: {} notes, {} assets, {} links",
        vault.display(),
        r.summary.notes,
        r.summary.assets,
        links
    );
    if r.unrecorded > 0 {
        say!(
            "{} changes not recorded by this scan: the running daemon records them.",
            r.unrecorded
        );
    } else if r.recorded == 0 {
        say!("Nothing new to record.");
    } else {
        let events: Vec<String> = r.events.iter().map(|(e, n)| format!("{n} {e}")).collect();
        say!(
            "Recorded {} new versions ({}), {} of new objects.",
            r.recorded,
            events.join(", "),
            human_bytes(r.new_bytes)
        );
    }
    let t = &r.totals;
    say!("External URLs: {}", t.urls);
    let unresolved = r
        .summary
        .unresolved
        .iter()
        .map(|u| format!("{}:{}  {} ({})", u.note, u.line, u.target, u.reason));
    output::list("Unresolved links", t.unresolved, unresolved);
    let ambiguous = r.summary.ambiguous.iter().map(|a| {
        let n = a.candidates.len();
        format!(
            "{}:{}  {} → {} ({n} candidates)",
            a.note, a.line, a.target, a.resolved
        )
    });
    output::list("Ambiguous links", t.ambiguous, ambiguous);
    let composted = r
        .summary
        .composted
        .iter()
        .map(|c| format!("{} ({})", c.note, c.reason));
    output::list("Composted profiles", t.composted, composted);
    let problems = r
        .summary
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message));
    output::list("Problems", t.problems, problems);
}

pub(crate) fn history(ctx: &Context, args: &HistoryArgs) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let path = typed_path(ctx, &store, &args.path)?;
    let versions = history::versions_of(&store, &path, true)?;
    if args.json {
        output::json(&serde_json::json!({ "path": path, "versions": versions }))?;
    } else if versions.is_empty() {
        eprintln!(
            "vaultkeep: no recorded versions of {path} (paths are relative to the vault {})",
            ctx.vault.display()
        );
    } else {
        for v in &versions {
            let moved = v
                .from
                .as_ref()
                .map(|f| format!(" from {f}"))
                .unwrap_or_default();
            let device = v
                .device
                .as_ref()
                .map(|d| format!("  (on {d})"))
                .unwrap_or_default();
            say!(
                "{:>3}  {}  {:<8}  {}  {:>9}  {}{}{}",
                v.version,
                v.time.round(jiff::Unit::Second).unwrap_or(v.time),
                v.event.name(),
                v.sha256.short(),
                human_bytes(v.size),
                v.path,
                moved,
                device
            );
        }
    }
    Ok(Exit::failed_if(versions.is_empty()))
}

pub(crate) fn recover(ctx: &Context, args: &RecoverArgs) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let path = typed_path(ctx, &store, &args.path)?;
    let default_out = ctx.vault.join(&path);
    let to = match &args.output {
        Some(p) if p.as_os_str() == "-" => Output::Stdout,
        Some(p) => Output::File {
            path: p,
            force: args.force,
            in_vault: inside_vault(ctx, p),
        },
        None => Output::File {
            path: &default_out,
            force: args.force,
            in_vault: Some(path.clone()),
        },
    };
    let shown = match &to {
        Output::Stdout => None,
        Output::File { path, .. } => Some(path.display().to_string()),
    };
    match history::recover(&store, &path, args.version, to) {
        Ok(r) => {
            if let Some(out) = shown {
                if let Some(k) = &r.kept {
                    eprintln!(
                        "The content it replaced is kept as version {} of {} ({}); `vaultkeep recover {} --version {}` brings it back.",
                        k.version,
                        k.path,
                        k.sha256.short(),
                        k.path,
                        k.version
                    );
                }
                let v = &r.version;
                eprintln!(
                    "Recovered version {} of {path} ({}, {}) to {out}",
                    v.version,
                    v.event.name(),
                    v.time
                );
            }
            Ok(Exit::Success)
        }
        Err(RecoverError::NoHistory(p)) => {
            eprintln!(
                "vaultkeep: no recorded versions of {p} (paths are relative to the vault {})",
                ctx.vault.display()
            );
            Ok(Exit::Partial)
        }
        Err(e @ (RecoverError::NoSuchVersion { .. } | RecoverError::Exists(_))) => {
            eprintln!("vaultkeep: {e}");
            Ok(Exit::Partial)
        }
        Err(e) => Err(e).context(format!("cannot recover {path}")),
    }
}

/// A vault file's path as the user typed it, made vault-relative (issue 9): relative to the
/// vault, with the vault folder in front, or absolute inside the vault.
fn typed_path(ctx: &Context, store: &Store, typed: &str) -> anyhow::Result<String> {
    let known = |rel: &str| {
        ctx.vault.join(rel).exists() || history::is_recorded(store, rel, true).unwrap_or(false)
    };
    crate::vault::relative_path(&ctx.vault, typed, known).ok_or_else(|| {
        anyhow::anyhow!(
            "{typed} is outside the vault {}; give a path relative to the vault, or one inside it",
            ctx.vault.display()
        )
    })
}

/// The vault-relative path of `path` when it lies inside the vault.
fn inside_vault(ctx: &Context, path: &Path) -> Option<String> {
    let typed = path.to_string_lossy();
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    crate::vault::relative_path(&ctx.vault, &absolute.to_string_lossy(), |_| false)
        .filter(|_| !typed.is_empty())
}
