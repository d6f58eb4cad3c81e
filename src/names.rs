//! The one rule for names that come from outside (agent ids, feature names). They become
//! directory names and git ref names, so they are checked where they enter and nowhere later.

use thiserror::Error;

pub const MAX_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind} {shown}: {rule}")]
pub struct NameError {
    pub kind: &'static str,
    pub shown: String,
    pub rule: &'static str,
}

pub const RULE: &str = "use 1 to 63 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit, with no \"..\" and not ending in '.' or \".lock\"";

/// Checks `name` against `^[a-z0-9][a-z0-9._-]{0,62}$`, no `..`, no trailing `.` or `.lock`
/// (the last two keep it a legal git ref component).
pub fn check(kind: &'static str, name: &str) -> Result<(), NameError> {
    let fail = |rule: &'static str| {
        Err(NameError {
            kind,
            shown: format!("{name:?}"),
            rule,
        })
    };
    if name.is_empty() {
        return fail("it is empty; use 1 to 63 characters from a-z, 0-9, '.', '_' and '-'");
    }
    if name.len() > MAX_LEN {
        return fail("it is longer than 63 characters");
    }
    let first = name.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return fail("it must start with a lowercase letter or a digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return fail(
            "only lowercase letters a-z, digits 0-9, '.', '_' and '-' are allowed (no spaces, slashes or capitals)",
        );
    }
    if name.contains("..") {
        return fail("it must not contain \"..\"");
    }
    if name.ends_with('.') || name.ends_with(".lock") {
        return fail("it must not end in '.' or \".lock\" (git refuses such branch names)");
    }
    Ok(())
}

pub fn agent_id(name: &str) -> Result<(), NameError> {
    check("agent id", name)
}

pub fn feature_name(name: &str) -> Result<(), NameError> {
    check("feature name", name)
}

/// Where a feature's worktree goes: a directory directly inside `worktrees_dir`, named after the
/// feature, whatever name arrived.
pub fn worktree_path(
    worktrees_dir: &std::path::Path,
    feature: &str,
) -> Result<std::path::PathBuf, NameError> {
    feature_name(feature)?;
    Ok(worktrees_dir.join(feature))
}

/// Whether `path` is one [`worktree_path`] could have made: directly inside `worktrees_dir`,
/// under a valid feature name. A path read back from the log is used only if it is.
pub fn is_worktree_path(worktrees_dir: &std::path::Path, path: &std::path::Path) -> bool {
    path.parent() == Some(worktrees_dir)
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| feature_name(n).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    proptest::proptest! {
        // Any string at all, including separators, dots and NULs: either refused, or a path one
        // level inside the worktrees directory.
        #[test]
        fn no_name_makes_a_path_outside_the_worktrees_directory(
            name in prop_oneof![
                any::<String>(),
                "[a-z0-9./_~^:@{}\\ -]{0,12}",
                "(\\.\\./|/|[a-z]{1,3}/){1,4}[a-z.]{0,4}",
            ]
        ) {
            let dir = Path::new("/srv/worktrees");
            if let Ok(path) = worktree_path(dir, &name) {
                prop_assert_eq!(path.parent(), Some(dir));
                prop_assert!(path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
                prop_assert!(is_worktree_path(dir, &path));
            }
        }
    }

    #[test]
    fn paths_from_elsewhere_are_not_worktree_paths() {
        let dir = Path::new("/srv/worktrees");
        for bad in [
            "/etc",
            "/srv/worktrees",
            "/srv/worktrees/../x",
            "/srv/worktrees/a/b",
            "/srv/other/a",
            "/srv/worktrees/..",
            "/srv/worktrees/UPPER",
        ] {
            assert!(!is_worktree_path(dir, Path::new(bad)), "{bad}");
        }
        assert!(is_worktree_path(dir, Path::new("/srv/worktrees/f1")));
    }

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["agent-001", "a", "user-authentication", "v1.2_x", "0abc"] {
            assert_eq!(check("agent id", ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_names_that_could_escape_or_break_refs() {
        for bad in [
            "", "../etc", "A B", "a/b", "Agent", ".hidden", "-x", "a..b", "x.lock", "x.", "a b",
            "a\\b", "a~1", "a^", "a:b", "a?", "a*", "a[", "é",
        ] {
            assert!(check("agent id", bad).is_err(), "{bad:?} should be refused");
        }
        assert!(check("agent id", &"a".repeat(64)).is_err());
        assert!(check("agent id", &"a".repeat(63)).is_ok());
    }

    #[test]
    fn message_names_the_value_and_the_rule() {
        let err = agent_id("../etc").unwrap_err().to_string();
        assert!(err.contains("agent id \"../etc\""), "{err}");
        assert!(err.contains("start with"), "{err}");
    }
}
