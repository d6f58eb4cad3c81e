//! Scopes: the paths a feature said it will change (`add-feature --paths 'src/auth/**'`). Two
//! features whose scopes overlap are not worked on at once, unless one of them allows it
//! (`--allow-overlap`): the second waits for the first, and its wait reason names it. Barrier
//! paths (`spanfold.barrierPaths`, recorded in the log) serialise every feature that touches
//! them, overlap allowed or not.
//!
//! Whether two globs can name a common path is decided by their words alone, and on the safe
//! side: two plain paths overlap when they are equal or one is a directory holding the other;
//! a glob is taken as everything under its plain beginning (`src/auth/**` and `src/auth/*.rs`
//! are both "under `src/auth/`"). So a pair may be kept apart that a full glob match would let
//! run together, never the other way round.

use crate::reducer::Feature;

/// Whether globs `a` and `b` may name a common path.
pub fn globs_overlap(a: &str, b: &str) -> bool {
    let (pa, ga) = plain_part(a);
    let (pb, gb) = plain_part(b);
    match (ga, gb) {
        // Equal, or one a directory that holds the other.
        (false, false) => pa == pb || within(pa, pb) || within(pb, pa),
        (true, true) => pa.starts_with(pb) || pb.starts_with(pa),
        (true, false) => glob_meets_path(pa, pb),
        (false, true) => glob_meets_path(pb, pa),
    }
}

/// Whether some path beginning with `prefix` (a glob's plain beginning) is `path` or lies in
/// it (a directory).
fn glob_meets_path(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix) || within(prefix, path)
}

/// The plain beginning of a glob (up to its first `*`, `?` or `[`), and whether it has more.
fn plain_part(glob: &str) -> (&str, bool) {
    let glob = glob.trim_start_matches("./");
    match glob.find(['*', '?', '[']) {
        Some(i) => (&glob[..i], true),
        None => (glob.trim_end_matches('/'), false),
    }
}

/// `inner` lies in directory `dir`.
fn within(inner: &str, dir: &str) -> bool {
    inner.len() > dir.len() && inner.starts_with(dir) && inner.as_bytes()[dir.len()] == b'/'
}

/// Why two features must not be worked on at once: the globs of each that meet, and the
/// barrier path they both touch when that is the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Apart<'f> {
    pub mine: &'f str,
    pub theirs: &'f str,
    pub barrier: Option<&'f str>,
}

/// Whether `a` and `b` must not be worked on at once: both said their scope, and either both
/// touch one of the barrier paths, or neither allows overlap and some path of one may be a path
/// of the other.
pub fn kept_apart<'f>(a: &'f Feature, b: &'f Feature, barriers: &'f [String]) -> Option<Apart<'f>> {
    if a.scopes.is_empty() || b.scopes.is_empty() {
        return None;
    }
    let touching = |f: &'f Feature, barrier: &str| {
        f.scopes
            .iter()
            .find(|s| globs_overlap(s, barrier))
            .map(String::as_str)
    };
    for barrier in barriers {
        if let (Some(mine), Some(theirs)) = (touching(a, barrier), touching(b, barrier)) {
            let barrier = Some(barrier.as_str());
            return Some(Apart {
                mine,
                theirs,
                barrier,
            });
        }
    }
    if a.allow_overlap || b.allow_overlap {
        return None;
    }
    a.scopes.iter().find_map(|x| {
        let y = b.scopes.iter().find(|y| globs_overlap(x, y))?;
        Some(Apart {
            mine: x.as_str(),
            theirs: y.as_str(),
            barrier: None,
        })
    })
}

/// Whether `f` may be kept apart from anything: it said its scope.
pub fn scoped(f: &Feature) -> bool {
    !f.scopes.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_overlap_when_some_path_could_match_both() {
        let yes = [
            ("src/auth/**", "src/auth/login.rs"),
            ("src/auth/**", "src/auth/*.rs"),
            ("docs/auth.md", "docs/auth.md"),
            ("src/auth", "src/auth/login.rs"),
            ("*.rs", "src/main.rs"),
            ("src/**", "src/auth/**"),
            ("src/auth/x*", "src"),
            ("src/auth*", "src/authz.rs"),
            ("Cargo.lock", "./Cargo.lock"),
        ];
        for (a, b) in yes {
            assert!(globs_overlap(a, b), "{a} {b}");
            assert!(globs_overlap(b, a), "{b} {a}");
        }
        let no = [
            ("src/auth/**", "src/auth.rs"),
            ("src/auth/**", "docs/**"),
            ("docs/auth.md", "docs/auth.mdx"),
            ("src/a", "src/ab/c.rs"),
            ("src/auth/login.rs", "src/auth/logout.rs"),
        ];
        for (a, b) in no {
            assert!(!globs_overlap(a, b), "{a} {b}");
            assert!(!globs_overlap(b, a), "{b} {a}");
        }
    }
}
