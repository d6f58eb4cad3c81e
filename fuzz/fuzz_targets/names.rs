//! `names::check`, `agent_id` and `feature_name` on arbitrary strings.
//!
//! What the module promises (its doc comments): a name is accepted exactly when it matches
//! `^[a-z0-9][a-z0-9._-]{0,62}$`, has no `..`, and does not end in `.` or `.lock`; a feature
//! name may also be several such names joined by '/', 63 bytes in all. Names become directory
//! names and git ref names, so an accepted name is a safe path component (a feature's once its
//! slashes are flattened) and a legal git ref. Checked here both ways against a reference written from the doc, against
//! the rules of `git check-ref-format`, and against gitoxide's ref-name validation
//! (`git::check_branch_name`, which spanfold uses for the branches it creates).

#![no_main]

use libfuzzer_sys::fuzz_target;
use spanfold::names::{self, MAX_LEN};

/// The documented rule, written independently of the implementation.
fn documented_rule(name: &str) -> bool {
    let b = name.as_bytes();
    let allowed = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b".-_".contains(&c);
    !b.is_empty()
        && b.len() <= MAX_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| allowed(c))
        && !name.contains("..")
        && !name.ends_with('.')
        && !name.ends_with(".lock")
}

/// One component of a ref as `git check-ref-format` accepts it (plus `git branch`'s refusal of
/// a leading `-`).
fn git_ref_component_ok(c: &str) -> bool {
    !c.is_empty()
        && c != "@"
        && !c.starts_with('.')
        && !c.starts_with('-')
        && !c.ends_with('.')
        && !c.ends_with(".lock")
        && !c.contains("..")
        && !c.contains("@{")
        && !c
            .chars()
            .any(|ch| ch.is_ascii_control() || ch == ' ' || "~^:?*[\\/".contains(ch))
}

/// A feature name by its documented rule: parts joined by '/', each a name, 63 bytes in all.
fn documented_feature_rule(name: &str) -> bool {
    name.len() <= MAX_LEN && name.split('/').all(documented_rule)
}

fn check_feature(name: &str) {
    let feature = names::feature_name(name);
    assert_eq!(
        feature.is_ok(),
        documented_feature_rule(name),
        "feature_name disagrees with its documented rule on {name:?}: {feature:?}"
    );
    match feature {
        Ok(()) => {
            let dir = names::worktree_dir_name(name);
            assert!(
                !dir.contains('/') && !dir.contains('\\') && dir != "." && dir != "..",
                "{name:?} makes the directory {dir:?}"
            );
            if let Err(e) = spanfold::git::check_branch_name(&format!("spanfold/{name}")) {
                panic!("accepted feature {name:?}, but git refuses its branch: {e}");
            }
        }
        Err(e) => {
            assert_eq!(e.kind, "feature name");
            let msg = e.to_string();
            assert!(
                msg.starts_with("invalid feature name ") && msg.contains(e.rule),
                "{msg}"
            );
            // A suggestion, when there is one, is a name the rule accepts.
            if let Some(s) = &e.suggestion {
                assert!(documented_feature_rule(s), "suggested {s:?} for {name:?}");
            }
        }
    }
}

fn check_one(name: &str) {
    check_feature(name);
    let checked = names::check("agent id", name);
    // Agent ids are the same rule under another label; feature names without '/' too.
    let agent = names::agent_id(name);
    let feature = names::feature_name(name);
    assert_eq!(checked.is_ok(), agent.is_ok(), "{name:?}");
    if name.contains('/') {
        assert!(checked.is_err(), "a name with '/' is no agent id: {name:?}");
        return;
    }
    assert_eq!(checked.is_ok(), feature.is_ok(), "{name:?}");
    assert_eq!(
        checked.is_ok(),
        documented_rule(name),
        "names::check disagrees with its documented rule on {name:?}: {checked:?}"
    );
    match checked {
        Ok(()) => {
            assert!(!name.is_empty() && name.len() <= MAX_LEN, "{name:?}");
            assert!(
                !name.contains('/') && !name.contains('\\') && !name.contains('\0'),
                "accepted a name that is not a single path component: {name:?}"
            );
            assert!(
                !name.chars().any(|c| c.is_whitespace() || c.is_control()),
                "accepted whitespace or a control character: {name:?}"
            );
            assert!(name != "." && name != "..", "{name:?}");
            assert!(
                git_ref_component_ok(name),
                "accepted a name git refuses as a ref component: {name:?}"
            );
            // The branches spanfold makes for features, and a branch of the bare name.
            for branch in [name.to_owned(), format!("spanfold/{name}")] {
                if let Err(e) = spanfold::git::check_branch_name(&branch) {
                    panic!("accepted {name:?}, but git refuses branch {branch:?}: {e}");
                }
            }
        }
        Err(e) => {
            let (agent, feature) = (agent.unwrap_err(), feature.unwrap_err());
            assert_eq!(e.kind, "agent id");
            assert_eq!(agent.kind, "agent id");
            assert_eq!(feature.kind, "feature name");
            assert_eq!(e.rule, agent.rule);
            assert_eq!(e.rule, feature.rule);
            // The message names the value (quoted, escaped) and the rule.
            assert_eq!(e.shown, format!("{name:?}"));
            if let Some(s) = &e.suggestion {
                assert!(documented_rule(s), "suggested {s:?} for {name:?}");
            }
            let msg = feature.to_string();
            assert!(msg.starts_with("invalid feature name "), "{msg}");
            assert!(
                msg.contains(&feature.shown) && msg.contains(feature.rule),
                "{msg}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as text, and (when they are not UTF-8) with the bad sequences replaced: names
    // arrive as OTLP strings, which are UTF-8.
    let text = String::from_utf8_lossy(data);
    check_one(&text);
    // Each line too, so one input tries several names and small seeds combine.
    if text.contains('\n') {
        for line in text.split('\n') {
            check_one(line);
        }
    }
});
