//! `spanfold.copyFiles`: what a checkout needs but git does not carry (`.env`, local settings),
//! copied from the main checkout into a new worktree. A pattern is a path inside the checkout
//! with git's wildcards in any of its components (`.env`, `config/*.local.json`); a directory
//! that matches is copied whole. Nothing already in the worktree is overwritten, nothing under
//! `.git` is read, and symbolic links are not followed.

use std::path::{Component, Path, PathBuf};

use gix::bstr::ByteSlice;

use super::GitError;

/// The file in a worktree's own git directory that says it was made ready, listing the files
/// copied in (which are then not the agent's uncommitted work).
pub const READY_MARKER: &str = "spanfold-ready";

/// The files copied into the worktree at `dir`, as its marker lists them.
pub fn copied_into(dir: &Path) -> Vec<String> {
    super::private_git_dir(dir)
        .ok()
        .and_then(|git_dir| std::fs::read_to_string(git_dir.join(READY_MARKER)).ok())
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Most files one worktree gets: a pattern that matches a dependency tree is a mistake.
const MAX_FILES: usize = 10_000;

/// The patterns of `spanfold.copyFiles`: separated by commas or white space.
pub fn copy_patterns(value: &str) -> Vec<&str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Copies what `patterns` match in `from` (the main checkout) to the same places under `to`
/// (a worktree). Returns the files copied, relative, sorted.
pub fn copy_matching(from: &Path, to: &Path, patterns: &[&str]) -> Result<Vec<String>, GitError> {
    let mut copied = Vec::new();
    for pattern in patterns {
        let components = components(pattern)?;
        for rel in expand(from, &components) {
            copy_tree(&from.join(&rel), &to.join(&rel), &rel, &mut copied)?;
        }
    }
    copied.sort();
    copied.dedup();
    Ok(copied)
}

/// A pattern's components, refused when it could reach outside the checkout or into `.git`.
fn components(pattern: &str) -> Result<Vec<&str>, GitError> {
    let bad = |why: &str| GitError::Setup {
        message: format!(
            "spanfold.copyFiles: {pattern:?} {why}; give paths inside the checkout, such as .env or config/*.local.json"
        ),
    };
    let mut out = Vec::new();
    for c in Path::new(pattern).components() {
        match c {
            Component::Normal(name) => {
                let name = name.to_str().ok_or_else(|| bad("is not UTF-8"))?;
                if name == ".git" {
                    return Err(bad("reaches into .git"));
                }
                out.push(name);
            }
            Component::CurDir => {}
            _ => return Err(bad("leaves the checkout")),
        }
    }
    if out.is_empty() {
        return Err(bad("names nothing"));
    }
    Ok(out)
}

/// The relative paths under `root` that `components` match, one component at a time.
fn expand(root: &Path, components: &[&str]) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for component in components {
        let wild = component.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for rel in &found {
            if !wild {
                let candidate = rel.join(component);
                if root.join(&candidate).symlink_metadata().is_ok() {
                    next.push(candidate);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
                continue;
            };
            let mode = gix::glob::wildmatch::Mode::NO_MATCH_SLASH_LITERAL;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name != ".git"
                    && gix::glob::wildmatch(component.as_bytes().as_bstr(), name.into(), mode)
                {
                    next.push(rel.join(name));
                }
            }
        }
        next.sort();
        found = next;
    }
    found
}

/// Copies the file or directory `src` to `dst` unless something is there already.
fn copy_tree(src: &Path, dst: &Path, rel: &Path, copied: &mut Vec<String>) -> Result<(), GitError> {
    let io = |action: &str, path: &Path, e: std::io::Error| GitError::Setup {
        message: format!("spanfold.copyFiles: {action} {}: {e}", path.display()),
    };
    let meta = src.symlink_metadata().map_err(|e| io("reading", src, e))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| io("listing", src, e))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        for name in entries.iter().filter(|n| *n != ".git") {
            copy_tree(&src.join(name), &dst.join(name), &rel.join(name), copied)?;
        }
        return Ok(());
    }
    if !meta.is_file() || dst.symlink_metadata().is_ok() {
        return Ok(());
    }
    if copied.len() >= MAX_FILES {
        return Err(GitError::Setup {
            message: format!(
                "spanfold.copyFiles matches more than {MAX_FILES} files; name the files a worktree needs, not a dependency tree"
            ),
        });
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
    }
    std::fs::copy(src, dst).map_err(|e| io("copying", src, e))?;
    copied.push(rel.to_string_lossy().into_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_copy_what_they_match_and_never_overwrite_or_leave_the_checkout() {
        let main = tempfile::tempdir().expect("tempdir");
        let wt = tempfile::tempdir().expect("tempdir");
        let write = |dir: &Path, rel: &str, text: &str| {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write(main.path(), ".env", "SECRET=1");
        write(main.path(), "config/a.local.json", "a");
        write(main.path(), "config/b.json", "b");
        write(main.path(), ".vscode/settings.json", "{}");
        write(main.path(), "README", "main's");
        write(main.path(), ".git/config", "never");
        write(wt.path(), "README", "the branch's");
        let patterns = copy_patterns(".env, config/*.local.json .vscode README");
        let copied = copy_matching(main.path(), wt.path(), &patterns).expect("copied");
        assert_eq!(
            copied,
            [".env", ".vscode/settings.json", "config/a.local.json"]
        );
        let read = |rel: &str| std::fs::read_to_string(wt.path().join(rel)).ok();
        assert_eq!(read("README").as_deref(), Some("the branch's"));
        assert_eq!(read("config/b.json"), None);
        for bad in ["../x", "/etc/passwd", ".git/config", "a/../../b"] {
            let err = copy_matching(main.path(), wt.path(), &[bad]).expect_err(bad);
            assert!(err.to_string().contains("spanfold.copyFiles"), "{err}");
        }
    }
}
