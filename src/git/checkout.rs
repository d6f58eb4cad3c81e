//! Bringing the main checkout from one commit's tree to another's in-process, after a merge moved
//! the branch it is on: what `git read-tree -m -u OLD NEW` does, without a git process.
//!
//! Only the plain case is done here: no content conversion (attributes, `core.autocrlf`), no
//! submodule, no sparse checkout, an index without extensions that would go stale, and paths git
//! itself would check out. Anything else is [`Update::NotPlain`] and the caller runs git, which
//! knows every case. Like git, nothing is overwritten that is not exactly the old tree's: every
//! path the update touches is checked (index entry and file content) before the first write.

use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice as _};
use gix::object::tree::EntryKind;

use super::{GitError, gix_err};

/// What [`update`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Update {
    /// The index and the files are now the new tree's.
    Done,
    /// Nothing was touched: this checkout needs git (the reason, for the log).
    NotPlain(&'static str),
}

/// One path to change, checked.
struct Step {
    path: String,
    /// What the path holds in the old tree, and as what (none for an addition).
    old: Option<(ObjectId, EntryKind)>,
    /// What it will hold (none for a deletion), and as what.
    new: Option<(ObjectId, EntryKind)>,
}

/// Moves the checkout at `workdir` (whose index is `repo`'s) from `old`'s tree to `new`'s.
/// An error means a path was not as the old tree has it (local work, an untracked file in the
/// way): nothing was written.
pub fn update(
    repo: &gix::Repository,
    workdir: &Path,
    old: ObjectId,
    new: ObjectId,
) -> Result<Update, GitError> {
    if let Some(why) = config_not_plain(repo) {
        return Ok(Update::NotPlain(why));
    }
    // As git does: the index is locked before it is read, so nothing staged meanwhile is lost,
    // and a lock someone else holds stops the update before any file is written.
    let index_path = repo.index_path();
    let lock = gix::lock::File::acquire_to_update_resource(
        &index_path,
        gix::lock::acquire::Fail::Immediately,
        None,
        0,
    )
    .map_err(|e| GitError::Gix {
        action: format!("locking the index {}", index_path.display()),
        message: e.to_string(),
    })?;
    let mut index = repo.open_index().map_err(gix_err("reading the index"))?;
    if let Some(why) = index_not_plain(&index) {
        return Ok(Update::NotPlain(why));
    }
    let steps = match changes(repo, old, new)? {
        Ok(steps) => steps,
        Err(why) => return Ok(Update::NotPlain(why)),
    };
    let file_mode = repo.config_snapshot().boolean("core.fileMode") != Some(false);
    let hash = repo.object_hash();
    let mut in_the_way = Vec::new();
    for step in &steps {
        if !as_the_old_tree_has_it(&index, workdir, step, (hash, file_mode))? {
            in_the_way.push(step.path.clone());
        }
    }
    if !in_the_way.is_empty() {
        return Err(GitError::Gix {
            action: "updating the main checkout".into(),
            message: format!(
                "these paths are not as the old tree has them and would be overwritten: {}",
                super::bounded_list(&in_the_way, 10)
            ),
        });
    }
    // Every blob read before the first write: a missing object stops it with nothing changed.
    let mut blobs = Vec::with_capacity(steps.len());
    for step in &steps {
        blobs.push(match step.new {
            Some((id, _)) => Some(
                repo.find_object(id)
                    .map_err(gix_err(format!("reading the blob of {}", step.path)))?
                    .detach()
                    .data,
            ),
            None => None,
        });
    }
    apply(&mut index, workdir, &steps, &blobs)?;
    commit_index(&index, lock)?;
    Ok(Update::Done)
}

/// Writes `index` through the lock taken before it was read, and puts it in place.
fn commit_index(index: &gix::index::File, lock: gix::lock::File) -> Result<(), GitError> {
    let failed = |e: &dyn std::fmt::Display| GitError::Gix {
        action: "writing the index".into(),
        message: e.to_string(),
    };
    let mut out = std::io::BufWriter::new(lock);
    index
        .write_to(&mut out, gix::index::write::Options::default())
        .map_err(|e| failed(&e))?;
    let lock = out.into_inner().map_err(|e| failed(&e.into_error()))?;
    lock.commit().map_err(|e| failed(&e))?;
    Ok(())
}

/// Configuration under which files are not the blobs' bytes, or are not all checked out.
fn config_not_plain(repo: &gix::Repository) -> Option<&'static str> {
    let config = repo.config_snapshot();
    let set = |key: &str| config.string(key).is_some();
    let off = |key: &str| config.boolean(key) == Some(false);
    if set("core.autocrlf") && !off("core.autocrlf") {
        return Some("core.autocrlf is set");
    }
    if set("core.eol") || set("core.attributesFile") || set("core.fsmonitor") {
        return Some("core.eol, core.attributesFile or core.fsmonitor is set");
    }
    if off("core.symlinks") || config.boolean("core.sparseCheckout") == Some(true) {
        return Some("core.symlinks is off or the checkout is sparse");
    }
    if config.boolean("core.ignoreCase") == Some(true)
        || config.boolean("core.precomposeUnicode") == Some(true)
    {
        return Some("the file system folds case or composes Unicode");
    }
    if attributes_files(repo).iter().any(|f| f.exists()) {
        return Some("attributes files apply (the repository's, the user's or the system's)");
    }
    None
}

/// Every attributes file git reads beside `.gitattributes`: any of them may convert content.
fn attributes_files(repo: &gix::Repository) -> Vec<PathBuf> {
    let mut files = vec![repo.common_dir().join("info").join("attributes")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    files.extend(config_home.map(|d| d.join("git").join("attributes")));
    // The system's, wherever git was installed.
    files.extend(["/etc/gitattributes", "/usr/local/etc/gitattributes"].map(PathBuf::from));
    files
}

fn index_not_plain(index: &gix::index::File) -> Option<&'static str> {
    if index.link().is_some() || index.untracked().is_some() || index.fs_monitor().is_some() {
        return Some("the index is split or caches untracked files or a file monitor's state");
    }
    let special = gix::index::entry::Flags::SKIP_WORKTREE | gix::index::entry::Flags::INTENT_TO_ADD;
    for entry in index.entries() {
        if entry.stage_raw() != 0 || entry.flags.intersects(special) {
            return Some("the index has conflicts, sparse or intent-to-add entries");
        }
        if is_attributes_file(entry.path(index)) {
            return Some("the checkout has .gitattributes");
        }
    }
    None
}

fn is_attributes_file(path: &BStr) -> bool {
    path == ".gitattributes" || path.ends_with(b"/.gitattributes")
}

/// A path git would write: no empty, `.` or `..` component, nothing named like `.git`, none of
/// the characters another filesystem reads as a separator or a stream.
fn plain_path(path: &str) -> bool {
    path.split('/').all(|c| {
        !c.is_empty() && c != "." && c != ".." && !is_dot_git(c) && !c.contains(['\\', ':'])
    })
}

/// `.git` as some filesystem would read it: any case, trailing dots or spaces, the short name.
fn is_dot_git(component: &str) -> bool {
    let lower = component.to_ascii_lowercase();
    lower.trim_end_matches(['.', ' ']) == ".git" || lower.starts_with("git~")
}

/// The blob-level changes from `old`'s tree to `new`'s, or why they are not plain.
fn changes(
    repo: &gix::Repository,
    old: ObjectId,
    new: ObjectId,
) -> Result<Result<Vec<Step>, &'static str>, GitError> {
    let tree = |id: ObjectId| {
        repo.find_commit(id)
            .map_err(gix_err("reading a commit"))?
            .tree()
            .map_err(gix_err("reading a commit's tree"))
    };
    let (from, to) = (tree(old)?, tree(new)?);
    let options = gix::diff::Options::default().with_rewrites(None);
    let changes = repo
        .diff_tree_to_tree(&from, &to, options)
        .map_err(gix_err("comparing the old and new trees"))?;
    let mut steps = Vec::with_capacity(changes.len());
    for change in changes {
        use gix::object::tree::diff::ChangeDetached as C;
        let (path, old, new) = match change {
            C::Addition {
                location,
                entry_mode,
                id,
                ..
            } => (location, None, Some((id, entry_mode.kind()))),
            C::Deletion {
                location,
                entry_mode,
                id,
                ..
            } => (location, Some((id, entry_mode.kind())), None),
            C::Modification {
                location,
                previous_entry_mode,
                previous_id,
                entry_mode,
                id,
            } => (
                location,
                Some((previous_id, previous_entry_mode.kind())),
                Some((id, entry_mode.kind())),
            ),
            C::Rewrite { .. } => return Ok(Err("the trees differ by a rename")),
        };
        let kinds = [old.map(|o| o.1), new.map(|n| n.1)];
        if kinds.contains(&Some(EntryKind::Tree)) {
            continue;
        }
        if kinds.contains(&Some(EntryKind::Commit)) {
            return Ok(Err("a submodule changes"));
        }
        let Ok(path) = path.to_str().map(str::to_owned) else {
            return Ok(Err("a path is not UTF-8"));
        };
        if !plain_path(&path) || is_attributes_file(path.as_str().into()) {
            return Ok(Err("a path needs git's own checks"));
        }
        steps.push(Step { path, old, new });
    }
    if file_and_directory_trade_places(&steps) {
        return Ok(Err("a file becomes a directory or a directory a file"));
    }
    Ok(Ok(steps))
}

/// Whether a path the update deletes is a directory of a path it adds, or the other way round
/// (`a` gives way to `a/b`): the checks above look at each path alone and would refuse it.
fn file_and_directory_trade_places(steps: &[Step]) -> bool {
    let deleted: std::collections::BTreeSet<&str> = (steps.iter())
        .filter(|s| s.new.is_none())
        .map(|s| s.path.as_str())
        .collect();
    let under = |dir: &str, path: &str| {
        path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
    };
    steps.iter().filter(|s| s.old.is_none()).any(|added| {
        deleted
            .iter()
            .any(|d| under(d, &added.path) || under(&added.path, d))
    })
}

/// Whether the index entry and the file at the step's path are exactly the old tree's (absent
/// for an addition), with no symbolic link among the directories on the way to it.
fn as_the_old_tree_has_it(
    index: &gix::index::File,
    workdir: &Path,
    step: &Step,
    (hash, file_mode): (gix::hash::Kind, bool),
) -> Result<bool, GitError> {
    let entry = index.entry_by_path_and_stage(
        step.path.as_str().into(),
        gix::index::entry::Stage::Unconflicted,
    );
    if entry.map(|e| (e.id, e.mode)) != step.old.map(|(id, kind)| (id, index_mode(kind))) {
        return Ok(false);
    }
    let file = workdir.join(&step.path);
    if !directories_are_plain(workdir, &file) {
        return Ok(false);
    }
    let meta = match std::fs::symlink_metadata(&file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(step.old.is_none()),
        Err(e) => return Err(io_err(&file, e)),
    };
    let Some((old, kind)) = step.old else {
        // An untracked file where the new tree puts one.
        return Ok(false);
    };
    let bytes = match kind {
        EntryKind::Link if meta.file_type().is_symlink() => {
            let target = std::fs::read_link(&file).map_err(|e| io_err(&file, e))?;
            target.into_os_string().into_encoded_bytes()
        }
        EntryKind::Blob | EntryKind::BlobExecutable if meta.is_file() => {
            let executable =
                std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
            if file_mode && executable != (kind == EntryKind::BlobExecutable) {
                return Ok(false);
            }
            std::fs::read(&file).map_err(|e| io_err(&file, e))?
        }
        _ => return Ok(false),
    };
    let id = gix::objs::compute_hash(hash, gix::object::Kind::Blob, &bytes).map_err(|e| {
        GitError::Gix {
            action: format!("hashing {}", file.display()),
            message: e.to_string(),
        }
    })?;
    Ok(id == old)
}

/// Every directory between `workdir` and `file` is a real directory or absent (never a link:
/// a write must not leave the checkout).
fn directories_are_plain(workdir: &Path, file: &Path) -> bool {
    let mut dir = file.parent();
    while let Some(d) = dir.filter(|d| *d != workdir) {
        match std::fs::symlink_metadata(d) {
            Ok(meta) if !meta.is_dir() => return false,
            _ => {}
        }
        dir = d.parent();
    }
    true
}

/// Writes the checked steps: the old files go first (a file may give way to a directory), then
/// the new ones, each with its stat so git sees it clean; then the index entries (looked up
/// while the index is still sorted, pushed after); directories left empty go last, so none is
/// removed that is about to receive a file.
fn apply(
    index: &mut gix::index::File,
    workdir: &Path,
    steps: &[Step],
    blobs: &[Option<Vec<u8>>],
) -> Result<(), GitError> {
    for step in steps.iter().filter(|s| s.old.is_some()) {
        let file = workdir.join(&step.path);
        std::fs::remove_file(&file).map_err(|e| io_err(&file, e))?;
    }
    let mut added = Vec::new();
    for (step, blob) in steps.iter().zip(blobs) {
        let (Some((id, kind)), Some(blob)) = (step.new, blob) else {
            continue;
        };
        let file = workdir.join(&step.path);
        // Again right before writing: what was checked must still hold.
        if !directories_are_plain(workdir, &file) {
            return Err(io_err(
                &file,
                std::io::Error::other("a directory on the way is no longer a directory"),
            ));
        }
        write_entry(&file, kind, blob)?;
        let stat = stat_of(&file)?;
        let path: &BStr = step.path.as_str().into();
        match index.entry_mut_by_path_and_stage(path, gix::index::entry::Stage::Unconflicted) {
            Some(entry) => {
                entry.id = id;
                entry.mode = index_mode(kind);
                entry.stat = stat;
            }
            None => added.push((stat, id, kind, step.path.as_str())),
        }
    }
    let gone: std::collections::BTreeSet<&str> = (steps.iter())
        .filter(|s| s.new.is_none())
        .map(|s| s.path.as_str())
        .collect();
    index.remove_entries(|_, path, _| path.to_str().is_ok_and(|p| gone.contains(p)));
    for (stat, id, kind, path) in added {
        let flags = gix::index::entry::Flags::empty();
        index.dangerously_push_entry(stat, id, flags, index_mode(kind), path.into());
    }
    index.sort_entries();
    // The cached trees no longer match the entries; git rebuilds them when it needs them.
    index.remove_tree();
    for path in gone {
        remove_empty_parents(workdir, &workdir.join(path));
    }
    Ok(())
}

fn stat_of(file: &Path) -> Result<gix::index::entry::Stat, GitError> {
    let meta = gix::index::fs::Metadata::from_path_no_follow(file).map_err(|e| io_err(file, e))?;
    gix::index::entry::Stat::from_fs(&meta).map_err(|e| GitError::Gix {
        action: format!("reading the times of {}", file.display()),
        message: e.to_string(),
    })
}

fn write_entry(file: &Path, kind: EntryKind, blob: &[u8]) -> Result<(), GitError> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    if kind == EntryKind::Link {
        let target = PathBuf::from(std::ffi::OsStr::from_bytes(blob));
        return std::os::unix::fs::symlink(target, file).map_err(|e| io_err(file, e));
    }
    let mode = if kind == EntryKind::BlobExecutable {
        0o777
    } else {
        0o666
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(file)
        .map_err(|e| io_err(file, e))?;
    out.write_all(blob).map_err(|e| io_err(file, e))
}

fn index_mode(kind: EntryKind) -> gix::index::entry::Mode {
    gix::index::entry::Mode::from(gix::object::tree::EntryMode::from(kind))
}

fn remove_empty_parents(workdir: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir.filter(|d| *d != workdir) {
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

fn io_err(path: &Path, e: std::io::Error) -> GitError {
    GitError::Gix {
        action: format!("updating {}", path.display()),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_git as git;

    fn write(dir: &Path, path: &str, text: &str) {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }

    /// A repository on `main` at commit A, and commit B (on `next`) that changes every kind of
    /// thing; `main` moved to B as a merge moves it, the checkout left at A.
    fn moved(change_b: impl Fn(&Path)) -> (tempfile::TempDir, ObjectId, ObjectId) {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        write(d, "a.txt", "a\n");
        write(d, "old/deep/b.txt", "b\n");
        write(d, "old/deep/c.txt", "c\n");
        write(d, "stays.txt", "s\n");
        std::os::unix::fs::symlink("a.txt", d.join("link")).expect("symlink");
        git(d, &["add", "-A"]);
        git(d, &["commit", "-q", "-m", "A"]);
        let a = git(d, &["rev-parse", "HEAD"]);
        git(d, &["switch", "-q", "-c", "next"]);
        change_b(d);
        git(d, &["add", "-A"]);
        git(d, &["commit", "-q", "-m", "B"]);
        let b = git(d, &["rev-parse", "HEAD"]);
        git(d, &["switch", "-q", "main"]);
        git(d, &["update-ref", "refs/heads/main", &b, &a]);
        let id = |h: &str| ObjectId::from_hex(h.as_bytes()).expect("hex");
        (dir, id(&a), id(&b))
    }

    fn every_kind(d: &Path) {
        write(d, "a.txt", "a, changed\n");
        std::fs::remove_dir_all(d.join("old")).expect("rm");
        write(d, "new/dir/c.txt", "c\n");
        write(d, "run.sh", "#!/bin/sh\n");
        std::fs::set_permissions(
            d.join("run.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        std::fs::remove_file(d.join("link")).expect("rm");
        write(d, "link", "now a file\n");
    }

    fn update_in(d: &Path, a: ObjectId, b: ObjectId) -> Result<Update, GitError> {
        let repo = super::super::open(d).expect("open");
        update(&repo, d, a, b)
    }

    #[test]
    fn the_checkout_becomes_the_new_tree_and_git_sees_it_clean() {
        let (dir, a, b) = moved(every_kind);
        let d = dir.path();
        assert_eq!(update_in(d, a, b).expect("updates"), Update::Done);
        assert_eq!(
            git(d, &["status", "--porcelain", "--untracked-files=all"]),
            ""
        );
        assert_eq!(git(d, &["diff-index", "--cached", "HEAD"]), "");
        assert_eq!(
            std::fs::read_to_string(d.join("a.txt")).expect("read"),
            "a, changed\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("link")).expect("read"),
            "now a file\n"
        );
        assert!(!d.join("old").exists(), "emptied directories go");
        let mode = std::fs::metadata(d.join("run.sh")).expect("stat");
        assert_ne!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o111,
            0
        );
        // And git can carry on from it: a commit on top records exactly the new tree.
        git(d, &["commit", "-q", "--allow-empty", "-m", "C"]);
        assert_eq!(
            git(d, &["rev-parse", "HEAD^{tree}"]),
            git(d, &["rev-parse", &format!("{b}^{{tree}}")])
        );
    }

    #[test]
    fn an_untracked_file_in_the_way_or_local_work_stops_it_before_any_write() {
        for spoil in ["new/dir/c.txt", "a.txt"] {
            let (dir, a, b) = moved(every_kind);
            let d = dir.path();
            write(d, spoil, "mine\n");
            let index_before = std::fs::read(d.join(".git/index")).expect("index");
            let err = update_in(d, a, b).expect_err("refused");
            assert!(err.to_string().contains(spoil), "{err}");
            assert_eq!(
                std::fs::read(d.join(".git/index")).expect("index"),
                index_before
            );
            assert_eq!(
                std::fs::read_to_string(d.join(spoil)).expect("kept"),
                "mine\n"
            );
            assert_eq!(
                std::fs::read_to_string(d.join("old/deep/b.txt")).expect("kept"),
                "b\n"
            );
        }
    }

    #[test]
    fn an_addition_before_a_modification_in_path_order_leaves_one_entry_each() {
        // The tree diff reaches `b.txt` (added) before `stays.txt` (changed): the entry of the
        // second must be found in the index although the first was already added to it.
        let (dir, a, b) = moved(|d| {
            write(d, "b.txt", "new\n");
            write(d, "stays.txt", "changed\n");
        });
        let d = dir.path();
        assert_eq!(update_in(d, a, b).expect("updates"), Update::Done);
        let files = git(d, &["ls-files"]);
        let mut unique: Vec<&str> = files.lines().collect();
        unique.dedup();
        assert_eq!(files.lines().count(), unique.len(), "{files}");
        assert_eq!(git(d, &["status", "--porcelain"]), "");
    }

    #[test]
    fn a_held_index_lock_or_an_unstaged_mode_change_stops_it_before_any_write() {
        let (dir, a, b) = moved(every_kind);
        let d = dir.path();
        std::fs::write(d.join(".git/index.lock"), "").expect("lock");
        assert!(update_in(d, a, b).is_err());
        assert_eq!(
            std::fs::read_to_string(d.join("a.txt")).expect("kept"),
            "a\n"
        );
        std::fs::remove_file(d.join(".git/index.lock")).expect("unlock");
        let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(d.join("a.txt"), exec).expect("chmod");
        let err = update_in(d, a, b).expect_err("refused");
        assert!(err.to_string().contains("a.txt"), "{err}");
    }

    #[test]
    fn a_directory_that_keeps_a_file_is_never_removed_and_made_again() {
        let (dir, a, b) = moved(|d| {
            write(d, "old/deep/b.txt", "b, changed\n");
            std::fs::remove_file(d.join("old/deep/c.txt")).expect("rm");
        });
        let d = dir.path();
        let inode =
            |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("stat"));
        let before = inode(&d.join("old/deep"));
        assert_eq!(update_in(d, a, b).expect("updates"), Update::Done);
        assert_eq!(inode(&d.join("old/deep")), before);
        assert!(!d.join("old/deep/c.txt").exists());
        assert_eq!(git(d, &["status", "--porcelain"]), "");
    }

    #[test]
    fn a_staged_mode_change_on_a_path_the_merge_changes_stops_it() {
        let (dir, a, b) = moved(every_kind);
        git(dir.path(), &["update-index", "--chmod=+x", "a.txt"]);
        let err = update_in(dir.path(), a, b).expect_err("refused");
        assert!(err.to_string().contains("a.txt"), "{err}");
    }

    #[test]
    fn a_file_that_becomes_a_directory_or_back_is_left_to_git() {
        let (dir, a, b) = moved(|d| {
            std::fs::remove_file(d.join("a.txt")).expect("rm");
            write(d, "a.txt/inside", "now a directory\n");
        });
        assert!(matches!(
            update_in(dir.path(), a, b),
            Ok(Update::NotPlain(_))
        ));
        let (dir, a, b) = moved(|d| {
            std::fs::remove_dir_all(d.join("old")).expect("rm");
            write(d, "old", "now a file\n");
        });
        assert!(matches!(
            update_in(dir.path(), a, b),
            Ok(Update::NotPlain(_))
        ));
    }

    #[test]
    fn attributes_or_a_crlf_setting_leave_it_to_git() {
        let (dir, a, b) = moved(|d| write(d, ".gitattributes", "*.txt text eol=crlf\n"));
        assert!(matches!(
            update_in(dir.path(), a, b),
            Ok(Update::NotPlain(_))
        ));
        let (dir, a, b) = moved(every_kind);
        git(dir.path(), &["config", "core.autocrlf", "input"]);
        assert!(matches!(
            update_in(dir.path(), a, b),
            Ok(Update::NotPlain(_))
        ));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).expect("read"),
            "a\n"
        );
    }

    #[test]
    fn only_paths_git_would_write_are_plain() {
        for ok in [
            "a",
            "src/main.rs",
            ".github/workflows/ci.yml",
            ".gitignore",
            "a.b/c",
        ] {
            assert!(plain_path(ok), "{ok}");
        }
        for bad in [
            "",
            "a//b",
            "./a",
            "../a",
            "a/../b",
            ".git/config",
            "x/.GIT/y",
            ".git. /x",
            "GIT~1/x",
            "a\\b",
            "c:d",
        ] {
            assert!(!plain_path(bad), "{bad:?}");
        }
    }
}
