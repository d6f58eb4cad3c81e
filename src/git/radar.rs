//! The conflict radar's git work: merging pairs of commits in memory (nothing reaches the object
//! database) to forecast whether two lines of work will conflict before either is submitted.
//!
//! A [`Radar`] keeps one open repository and two caches, both keyed by commits, so that a pass
//! whose branches have not moved repeats no work: the paths each branch changed since it left
//! the base branch, keyed by (base tip, branch tip), and each forecast, keyed by the commit pair
//! merged. After a pass only the entries that pass used are kept, so the caches stay as large as
//! the set of active branches.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use gix::ObjectId;
use gix::bstr::ByteSlice;

use super::{GitError, gix_err, open};

pub use crate::fact::ForecastKind;

/// What merging two commits would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forecast {
    pub kind: ForecastKind,
    /// The paths both sides changed: those that conflict for `Conflict`, those that merge
    /// cleanly for `Overlap`; sorted.
    pub paths: Vec<String>,
    /// Where the conflicting hunks sit in the merged file, as `path:first-last` (lines, from
    /// 1); empty for conflicts that are not in a text file's lines (binary, delete/modify).
    pub hunks: Vec<String>,
}

impl Forecast {
    fn clear() -> Forecast {
        Forecast {
            kind: ForecastKind::Clear,
            paths: Vec::new(),
            hunks: Vec::new(),
        }
    }
}

/// One forecast of a pass: `feature` (at `ours`) merged with the base branch or with another
/// feature (at `theirs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairForecast {
    pub feature: String,
    /// `None` for the base branch.
    pub other: Option<String>,
    pub ours: ObjectId,
    pub theirs: ObjectId,
    pub forecast: Forecast,
}

/// Paths changed on a branch since it left the base branch.
type Changed = Arc<BTreeSet<String>>;

pub struct Radar {
    repo: gix::Repository,
    options: gix::merge::commit::Options,
    changed: HashMap<(ObjectId, ObjectId), Changed>,
    merges: HashMap<(ObjectId, ObjectId), Forecast>,
    /// What merging needs, made once per pass and only when it merges something: making it
    /// reads the whole index (for attributes), which costs more than a merge.
    platforms: Option<Platforms>,
    /// How many merges the radar computed (not served from its cache): for tests and benches.
    pub merges_computed: u64,
}

impl Radar {
    pub fn open(repo_dir: &Path) -> Result<Radar, GitError> {
        let mut repo = open(repo_dir)?.with_object_memory();
        repo.object_cache_size_if_unset(32 * 1024 * 1024);
        let options = repo
            .tree_merge_options()
            .map_err(gix_err("reading merge options"))?
            .into();
        Ok(Radar {
            repo,
            options,
            changed: HashMap::new(),
            merges: HashMap::new(),
            platforms: None,
            merges_computed: 0,
        })
    }

    /// The tip of each branch (short name), `None` where the branch does not exist.
    pub fn tips(&self, branches: &[&str]) -> Vec<Option<ObjectId>> {
        branches
            .iter()
            .map(|b| {
                let mut r = self
                    .repo
                    .find_reference(format!("refs/heads/{b}").as_str())
                    .ok()?;
                r.peel_to_id().ok().map(|id| id.detach())
            })
            .collect()
    }

    /// Forecasts every active branch (feature, tip) against the base tip, and against every other
    /// branch that changed a path it changed too. Pairs with nothing in common are clear and are
    /// not listed. Output is sorted by feature, then other (the base first).
    pub fn pass(
        &mut self,
        base: ObjectId,
        branches: &[(String, ObjectId)],
    ) -> Result<Vec<PairForecast>, GitError> {
        let mut sorted: Vec<&(String, ObjectId)> = branches.iter().collect();
        sorted.sort();
        let mut used_changes = BTreeSet::new();
        let mut used_merges = BTreeSet::new();
        let mut changed = Vec::with_capacity(sorted.len());
        for (_, tip) in &sorted {
            used_changes.insert((base, *tip));
            changed.push(self.changed_paths(base, *tip)?);
        }
        let mut out = Vec::new();
        for (i, (feature, tip)) in sorted.iter().enumerate() {
            used_merges.insert(ordered(base, *tip));
            out.push(PairForecast {
                feature: feature.clone(),
                other: None,
                ours: *tip,
                theirs: base,
                forecast: self.forecast(base, *tip)?,
            });
            for (j, (other, other_tip)) in sorted.iter().enumerate().skip(i + 1) {
                if tip == other_tip || changed[i].is_disjoint(&changed[j]) {
                    continue;
                }
                used_merges.insert(ordered(*tip, *other_tip));
                out.push(PairForecast {
                    feature: feature.clone(),
                    other: Some(other.clone()),
                    ours: *tip,
                    theirs: *other_tip,
                    forecast: self.forecast(*tip, *other_tip)?,
                });
            }
        }
        self.changed.retain(|k, _| used_changes.contains(k));
        self.merges.retain(|k, _| used_merges.contains(k));
        // The merged blobs and trees were only ever in memory; they are not needed again. The
        // next pass that merges reads attributes afresh, in case they changed.
        self.repo.objects.reset_object_memory();
        self.platforms = None;
        Ok(out)
    }

    /// The paths `tip` changed since it left `base` (from their merge base), cached.
    pub fn changed_paths(&mut self, base: ObjectId, tip: ObjectId) -> Result<Changed, GitError> {
        if let Some(c) = self.changed.get(&(base, tip)) {
            return Ok(c.clone());
        }
        let from = self
            .repo
            .merge_base(base, tip)
            .map_err(gix_err("finding the merge base"))?
            .map(|id| id.detach());
        let paths = Arc::new(self.diff_paths(from, tip)?);
        self.changed.insert((base, tip), paths.clone());
        Ok(paths)
    }

    /// The paths changed from `from` (nothing: the empty tree) to `to`.
    fn diff_paths(
        &self,
        from: Option<ObjectId>,
        to: ObjectId,
    ) -> Result<BTreeSet<String>, GitError> {
        let tree = |id: ObjectId| {
            self.repo
                .find_commit(id)
                .map_err(gix_err("reading a commit"))?
                .tree()
                .map_err(gix_err("reading a commit's tree"))
        };
        let old = match from {
            Some(id) => tree(id)?,
            None => self.repo.empty_tree(),
        };
        let new = tree(to)?;
        let options = gix::diff::Options::default().with_rewrites(None);
        let changes = self
            .repo
            .diff_tree_to_tree(&old, &new, options)
            .map_err(gix_err("comparing trees"))?;
        Ok(changes
            .iter()
            .filter(|c| !c.entry_mode().is_tree())
            .map(|c| c.location().to_str_lossy().into_owned())
            .collect())
    }

    /// What merging `ours` and `theirs` would do, cached by the (unordered) pair.
    pub fn forecast(&mut self, ours: ObjectId, theirs: ObjectId) -> Result<Forecast, GitError> {
        let key = ordered(ours, theirs);
        if let Some(f) = self.merges.get(&key) {
            return Ok(f.clone());
        }
        if self.platforms.is_none() {
            self.platforms = Some(Platforms::new(&self.repo)?);
        }
        let f = self.merge(key.0, key.1)?;
        self.merges_computed += 1;
        self.merges.insert(key, f.clone());
        Ok(f)
    }

    fn merge(&mut self, ours: ObjectId, theirs: ObjectId) -> Result<Forecast, GitError> {
        let merge_base = self
            .repo
            .merge_base(ours, theirs)
            .map_err(gix_err("finding the merge base"))?
            .map(|id| id.detach());
        // One contains the other: the merge is a fast-forward, nothing to conflict.
        if merge_base == Some(ours) || merge_base == Some(theirs) {
            return Ok(Forecast::clear());
        }
        let Some(platforms) = self.platforms.as_mut() else {
            return Ok(Forecast::clear());
        };
        let labels = gix::merge::blob::builtin_driver::text::Labels {
            ancestor: None,
            current: None,
            other: None,
        };
        let mut graph = self.repo.revision_graph(platforms.commit_graph.as_ref());
        let outcome = gix::merge::plumbing::commit(
            ours,
            theirs,
            labels,
            &mut graph,
            &mut platforms.diff,
            &mut platforms.blob,
            &self.repo,
            &mut |id| id.to_hex_with_len(10).to_string(),
            self.options.clone().into(),
        )
        .map_err(|e| GitError::Gix {
            action: "merging in memory".into(),
            message: e.to_string(),
        })?;
        platforms.diff.clear_resource_cache_keep_allocation();
        let how = gix::merge::tree::TreatAsUnresolved::git();
        let mut paths = BTreeSet::new();
        let mut hunks = Vec::new();
        let conflicted = outcome.tree_merge.has_unresolved_conflicts(how);
        for c in &outcome.tree_merge.conflicts {
            if conflicted != c.is_unresolved(how) {
                continue;
            }
            let path = c.ours.location().to_str_lossy().into_owned();
            if conflicted && let Some(merged) = c.content_merge() {
                hunks.extend(self.marker_ranges(merged.merged_blob_id, &path));
            }
            // A rename on either side names both its source and its destination, as git does.
            for change in [&c.ours, &c.theirs] {
                paths.insert(change.location().to_str_lossy().into_owned());
                paths.insert(change.source_location().to_str_lossy().into_owned());
            }
        }
        let kind = match (conflicted, paths.is_empty()) {
            (true, _) => ForecastKind::Conflict,
            (false, false) => ForecastKind::Overlap,
            (false, true) => ForecastKind::Clear,
        };
        Ok(Forecast {
            kind,
            paths: paths.into_iter().collect(),
            hunks,
        })
    }

    /// The line ranges of the conflict markers in a merged blob, as `path:first-last`.
    fn marker_ranges(&self, blob: ObjectId, path: &str) -> Vec<String> {
        let Ok(object) = self.repo.find_object(blob) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut open_at = None;
        for (n, line) in object.data.lines().enumerate() {
            if line.starts_with(b"<<<<<<<") {
                open_at = Some(n + 1);
            } else if line.starts_with(b">>>>>>>")
                && let Some(first) = open_at.take()
            {
                out.push(format!("{path}:{first}-{}", n + 1));
            }
        }
        out
    }
}

/// The caches a merge works with (blob diffs and merges, with the repository's attributes and
/// drivers) and the commit-graph file, if any.
struct Platforms {
    diff: gix::diff::blob::Platform,
    blob: gix::merge::blob::Platform,
    commit_graph: Option<gix::commitgraph::Graph>,
}

impl Platforms {
    fn new(repo: &gix::Repository) -> Result<Platforms, GitError> {
        Ok(Platforms {
            diff: repo
                .diff_resource_cache_for_tree_diff()
                .map_err(gix_err("preparing to compare blobs"))?,
            blob: repo
                .merge_resource_cache(Default::default())
                .map_err(gix_err("preparing to merge blobs"))?,
            commit_graph: repo
                .commit_graph_if_enabled()
                .map_err(gix_err("reading the commit graph"))?,
        })
    }
}

fn ordered(a: ObjectId, b: ObjectId) -> (ObjectId, ObjectId) {
    if a <= b { (a, b) } else { (b, a) }
}
