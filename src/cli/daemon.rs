//! `watch` and `status`.

use std::sync::Arc;

use super::files::scan_options;
use super::output::{self, Exit, say};
use super::snapshots::{fetcher, launcher, runtime};
use super::{Context, WatchArgs};
use crate::report::human_bytes;
use crate::store::Store;
use crate::watch::Daemon;

pub(crate) fn watch(ctx: &Context, args: &WatchArgs) -> anyhow::Result<Exit> {
    crate::scan::check_vault(&ctx.vault)?;
    let (store, _lock) = Store::open_for_writing(&ctx.archive, "watch")?;
    let mut scan = scan_options(ctx);
    scan.progress = false;
    let remote = match &ctx.config.remote.url {
        None => None,
        Some(_) => {
            let client = crate::remote::Client::open(&ctx.config.remote)?;
            let device = crate::remote::device(&store, ctx.config.remote.device.as_deref())?;
            let sharing = crate::watch::Sharing {
                client,
                device,
                concurrency: ctx.config.remote.concurrency,
            };
            Some((sharing, ctx.config.remote.clone()))
        }
    };
    let daemon = Daemon {
        vault: ctx.vault.clone(),
        store,
        scan,
        fetcher: Arc::new(fetcher(ctx, args.allow_private, false)?),
        browser: launcher(ctx, &ctx.config.snapshot)?
            .inspect(|l| {
                if l.executable().is_none() {
                    tracing::info!(
                        "no Chromium: pages built by scripts are captured without them ({})",
                        crate::browser::INSTALL_HINT
                    );
                }
            })
            .map(Arc::new),
        remote,
        snapshot: ctx.config.snapshot.clone(),
        links: ctx.config.links.clone(),
        config: ctx.config.watch.clone(),
    };
    runtime()?.block_on(daemon.run())?;
    Ok(Exit::Success)
}

pub(crate) fn status(ctx: &Context, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let report = crate::watch::status::status(&store)?;
    if json {
        output::json(&report)?;
        return Ok(Exit::Success);
    }
    match (&report.daemon.pid, &report.daemon.since) {
        (Some(pid), Some(since)) => say!("The daemon runs (pid {pid}, since {since})."),
        _ => say!("No daemon is watching {}.", ctx.archive.display()),
    }
    if let Some(b) = &report.daemon.busy {
        say!("The archive is in use by {b}.");
    }
    say!(
        "Archive: {} files, {} versions, {}, {} snapshots; {} snapshots queued.",
        report.archive.files,
        report.archive.versions,
        match (report.archive.objects, report.archive.bytes) {
            (Some(n), Some(b)) => format!("{n} objects ({})", human_bytes(b)),
            _ => "objects not counted yet (`archive verify` counts them)".into(),
        },
        report.archive.snapshots,
        report.queue
    );
    if report.offline {
        say!("The network seems down: snapshots, link checks and composting wait.");
    }
    output::list(
        "Last events",
        report.last_events.len(),
        report
            .last_events
            .iter()
            .rev()
            .take(10)
            .map(|l| format!("{}  {}", l.time, l.text)),
    );
    output::list(
        "Last errors",
        report.last_errors.len(),
        report
            .last_errors
            .iter()
            .rev()
            .take(10)
            .map(|l| format!("{}  {}", l.time, l.text)),
    );
    Ok(Exit::Success)
}
