//! `export`: the log as OTLP/JSON lines or length-prefixed protobuf, to stdout or to a file
//! that replaces an earlier one only once it is whole.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::{Cli, ExportArgs, Output};
use crate::backend::Backend;

/// `export`: the log between two points as OTLP lines, to stdout or to a file written whole.
pub(super) fn export(
    args: &ExportArgs,
    cli: &Cli,
    coord_dir: &Path,
    backend: &mut Backend,
) -> Result<Output> {
    let (from, to) = (args.from.as_deref(), args.to.as_deref());
    let counted = match &args.output {
        None => {
            if cli.json {
                bail!(
                    "with --json, stdout carries the envelope: give --output FILE for the export"
                );
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let counted = backend.export(from, to, args.format.into(), &mut out)?;
            std::io::Write::flush(&mut out).context("writing the export to stdout")?;
            // The lines are the output; the summary goes to stderr so a pipe stays clean.
            if let Some(c) = counted {
                eprintln!(
                    "exported {} events ({} spans) in {} lines",
                    c.events, c.spans, c.lines
                );
            }
            return Ok(Output::new(Value::Null, String::new()));
        }
        Some(path) if is_special(path) => {
            // A pipe or a device (`-o /dev/null`, a FIFO a reader waits on) is written as it
            // is: renaming a file over it would replace the device with a file.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let counted = backend.export(from, to, args.format.into(), &mut out)?;
            std::io::Write::flush(&mut out)
                .with_context(|| format!("writing {}", path.display()))?;
            counted
        }
        Some(path) => {
            refuse_inside(path, coord_dir)?;
            // Written beside its destination and renamed once complete: an export cut short
            // never replaces an earlier, whole one.
            let partial = partial_path(path);
            let written = (|| {
                let file = std::fs::File::create(&partial)
                    .with_context(|| format!("creating {}", partial.display()))?;
                let mut out = std::io::BufWriter::new(file);
                let counted = backend.export(from, to, args.format.into(), &mut out)?;
                let file = out
                    .into_inner()
                    .map_err(|e| anyhow!("writing {}: {}", partial.display(), e.error()))?;
                file.sync_all()
                    .with_context(|| format!("writing {}", partial.display()))?;
                std::fs::rename(&partial, path)
                    .with_context(|| format!("moving the export to {}", path.display()))?;
                Ok::<_, anyhow::Error>(counted)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            written?
        }
    };
    let path = args.output.as_ref().map(|p| p.display().to_string());
    Ok(Output::new(
        json!({
            "path": path,
            "lines": counted.map(|c| c.lines),
            "spans": counted.map(|c| c.spans),
            "events": counted.map(|c| c.events),
        }),
        match counted {
            Some(c) => format!(
                "Exported {} events ({} spans) in {} lines to {}.",
                c.events,
                c.spans,
                c.lines,
                path.unwrap_or_default()
            ),
            None => format!("Exported the server's log to {}.", path.unwrap_or_default()),
        },
    ))
}

/// Where a file is written before it is renamed to `path` once whole: beside it, so the rename
/// stays on one file system.
/// Whether `path` exists and is neither a regular file nor a directory: a FIFO, a device or a
/// socket, which takes the bytes written to it rather than being a file to replace.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Refuses an output file inside the coordination directory: writing there could overwrite
/// the log itself (`export -o .git/spanfold/log/db` once emptied it).
fn refuse_inside(path: &Path, coord_dir: &Path) -> Result<()> {
    let absolute = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.into()))
    };
    // The file may not exist yet: its directory is what is resolved.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let target = absolute(dir).join(path.file_name().unwrap_or_default());
    if target.starts_with(absolute(coord_dir)) {
        bail!(
            "{} is inside the coordination directory {}, where the log lives; write the export elsewhere",
            path.display(),
            coord_dir.display()
        );
    }
    Ok(())
}
