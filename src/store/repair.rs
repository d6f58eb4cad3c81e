//! A damaged storage snapshot: checked by its CRC, copied aside, rebuilt from the log.

use std::path::{Path, PathBuf};

/// Sled keeps snapshots (`snap.*`) of its page table, derived from its log and rebuilt from it
/// when none is there. When the storage fails a checksum because its newest snapshot does (and
/// only then: without a snapshot, sled would take a damaged log as ending at the damage), the
/// directory is copied aside as it was found (`log.damaged-N` next to it) and the snapshots
/// removed, once; returns the copy, or None when there is nothing (more) to try.
pub(super) fn rebuild_snapshot(path: &Path, rebuilt: &mut Option<PathBuf>) -> Option<PathBuf> {
    if rebuilt.is_some() {
        return None;
    }
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap."))
        })
        .collect();
    snapshots.sort();
    if snapshot_is_sound(snapshots.last()?) {
        return None;
    }
    let parent = path.parent()?;
    let copy = (1..)
        .map(|n| parent.join(format!("log.damaged-{n}")))
        .find(|c| !c.exists())?;
    copy_dir(path, &copy).ok()?;
    for snapshot in &snapshots {
        std::fs::remove_file(snapshot).ok()?;
    }
    *rebuilt = Some(copy.clone());
    Some(copy)
}

/// A snapshot as sled writes it: the bytes, their length (8 bytes), their CRC-32 (4 bytes, little
/// endian).
pub(super) fn snapshot_is_sound(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let Some(body_len) = bytes.len().checked_sub(12).filter(|&n| n > 0) else {
        return false;
    };
    let (body, tail) = bytes.split_at(body_len);
    let expected = u32::from_le_bytes([tail[8], tail[9], tail[10], tail[11]]);
    crc32fast::hash(body) == expected
}

pub(super) fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
