//! The one rule for names that come from outside (agent ids, feature names). They become
//! directory names and git ref names, so they are checked where they enter and nowhere later.

use thiserror::Error;

pub const MAX_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind} {shown}: {rule}{}", suggestion.as_ref().map(|s| format!("; try {s:?}")).unwrap_or_default())]
pub struct NameError {
    pub kind: &'static str,
    pub shown: String,
    pub rule: &'static str,
    /// A name close to the refused one that the rule accepts, when there is one.
    pub suggestion: Option<String>,
}

pub const RULE: &str = "use 1 to 63 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit, with no \"..\" and not ending in '.' or \".lock\"";

/// Checks `name` against `^[a-z0-9][a-z0-9._-]{0,62}$`, no `..`, no trailing `.` or `.lock`
/// (the last two keep it a legal git ref component).
pub fn check(kind: &'static str, name: &str) -> Result<(), NameError> {
    rule_broken(name).map_or(Ok(()), |rule| {
        Err(NameError {
            kind,
            shown: format!("{name:?}"),
            rule,
            suggestion: Some(slug(name)).filter(|s| rule_broken(s).is_none()),
        })
    })
}

/// The rule `name` breaks, if any.
fn rule_broken(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty; use 1 to 63 characters from a-z, 0-9, '.', '_' and '-'");
    }
    if name.len() > MAX_LEN {
        return Some("it is longer than 63 characters");
    }
    let first = name.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Some("it must start with a lowercase letter or a digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some(
            "only lowercase letters a-z, digits 0-9, '.', '_' and '-' are allowed (no spaces or capitals)",
        );
    }
    if name.contains("..") {
        return Some("it must not contain \"..\"");
    }
    if name.ends_with('.') || name.ends_with(".lock") {
        return Some("it must not end in '.' or \".lock\" (git refuses such branch names)");
    }
    None
}

/// A name the rule accepts, made from `name`: lowercase, every run of other characters one
/// '-', trimmed, at most 63 characters.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c: char| c == '-' || c == '_');
    let mut out: String = out.chars().take(MAX_LEN).collect();
    while out.ends_with('-') || out.ends_with(".lock") {
        out.pop();
    }
    out
}

/// Longest capability name (a language, framework or area of expertise).
pub const MAX_CAPABILITY_LEN: usize = 64;

/// The rule for a capability name, whoever sends it: at most 64 bytes, printable (no control
/// character reaches a person's terminal through a status table), no comma (the list separator).
pub fn capability(item: &str) -> Result<(), String> {
    if item.len() > MAX_CAPABILITY_LEN {
        return Err(format!(
            "capability {:?}… is {} bytes; a capability name has at most {MAX_CAPABILITY_LEN}",
            item.chars().take(16).collect::<String>(),
            item.len()
        ));
    }
    if item.chars().any(|c| c.is_control() || c == ',') {
        return Err(format!(
            "capability {item:?} holds a control character or a comma; use printable characters"
        ));
    }
    Ok(())
}

pub fn agent_id(name: &str) -> Result<(), NameError> {
    check("agent id", name)
}

/// A feature name: one name, or several joined by '/' (`feature/login`), each by the rule, 63
/// characters in all. Its branch is `spanfold/NAME`; its worktree directory flattens the
/// slashes (see [`worktree_dir_name`]).
pub fn feature_name(name: &str) -> Result<(), NameError> {
    const KIND: &str = "feature name";
    if !name.contains('/') {
        return check(KIND, name);
    }
    let refuse = |rule: &'static str| {
        let suggestion = name
            .split('/')
            .map(slug)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        Err(NameError {
            kind: KIND,
            shown: format!("{name:?}"),
            rule,
            suggestion: Some(suggestion)
                .filter(|s| s.len() <= MAX_LEN && s.split('/').all(|p| rule_broken(p).is_none())),
        })
    };
    if name.len() > MAX_LEN {
        return refuse("it is longer than 63 characters");
    }
    for segment in name.split('/') {
        if let Some(rule) = rule_broken(segment) {
            return match segment.is_empty() {
                true => refuse(
                    "each part between slashes must be a name (no leading, trailing or double '/')",
                ),
                false => refuse(rule),
            };
        }
    }
    Ok(())
}

/// The directory name of a feature's worktree: its name with each '/' as '+', a character no
/// name holds, so two features never share a directory and none has a path separator.
pub fn worktree_dir_name(feature: &str) -> String {
    feature.replace('/', "+")
}

/// Where a feature's worktree goes: a directory directly inside `worktrees_dir`, named after the
/// feature, whatever name arrived.
pub fn worktree_path(
    worktrees_dir: &std::path::Path,
    feature: &str,
) -> Result<std::path::PathBuf, NameError> {
    feature_name(feature)?;
    Ok(worktrees_dir.join(worktree_dir_name(feature)))
}

/// Whether `path` is one [`worktree_path`] could have made: directly inside `worktrees_dir`,
/// under a valid feature name. A path read back from the log is used only if it is.
pub fn is_worktree_path(worktrees_dir: &std::path::Path, path: &std::path::Path) -> bool {
    path.parent() == Some(worktrees_dir)
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.contains('/') && feature_name(&n.replace('+', "/")).is_ok())
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
    fn feature_names_may_have_slash_separated_parts_flattened_for_their_directory() {
        for ok in ["feature/login", "team.a/feat_1/x"] {
            assert_eq!(feature_name(ok), Ok(()), "{ok}");
        }
        for bad in ["/x", "x/", "a//b", "a/../b", "a/B", "a/.x"] {
            assert!(feature_name(bad).is_err(), "{bad:?} should be refused");
        }
        let dir = Path::new("/srv/worktrees");
        let path = worktree_path(dir, "feature/login").expect("valid");
        assert_eq!(path, Path::new("/srv/worktrees/feature+login"));
        assert!(is_worktree_path(dir, &path));
        assert_ne!(
            worktree_path(dir, "feature-login").expect("valid"),
            path,
            "no two features share a directory"
        );
        assert!(agent_id("a/b").is_err(), "agent ids have no parts");
    }

    #[test]
    fn a_refused_name_comes_with_a_slug_the_rule_accepts() {
        let err = feature_name("Login Page!").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("login-page"));
        assert!(err.to_string().contains("try \"login-page\""), "{err}");
        let err = feature_name("Team A/Login").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("team-a/login"));
        assert_eq!(
            agent_id("!!!").unwrap_err().suggestion,
            None,
            "nothing to suggest"
        );
    }

    #[test]
    fn message_names_the_value_and_the_rule() {
        let err = agent_id("../etc").unwrap_err().to_string();
        assert!(err.contains("agent id \"../etc\""), "{err}");
        assert!(err.contains("start with"), "{err}");
    }
}
