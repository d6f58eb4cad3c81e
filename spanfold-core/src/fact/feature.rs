//! The facts of `spans/feature.yaml`: an operator requests, cancels, reopens and reviews
//! features.

use super::{Out, Priority, clamped, closed_set, list, required};
use crate::model::{Event, as_bool};
use crate::names;
use crate::vocab::attr;

/// `feature.request`: a feature added to the queue, or a queued one updated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureRequest<'a> {
    pub name: &'a str,
    /// Empty when absent.
    pub description: Option<&'a str>,
    /// Medium when absent; an unknown word refuses the request.
    pub priority: Option<Priority>,
    /// Story points, 1 to 100 as read (3 when absent).
    pub estimated_effort: Option<u32>,
    /// What an agent must have, as sent (the view keeps them lower-cased, as sets).
    pub languages: Vec<&'a str>,
    pub frameworks: Vec<&'a str>,
    pub expertise_areas: Vec<&'a str>,
    pub requirements: Vec<&'a str>,
    pub acceptance_criteria: Vec<&'a str>,
    /// The paths it will change (globs): its scope.
    pub paths: Vec<&'a str>,
    /// It may run beside features whose scope overlaps its own.
    pub allow_overlap: bool,
}

impl<'a> FeatureRequest<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let name = required(ev, attr::FEATURE_NAME, || {
            "the span has no feature.name".to_string()
        })?;
        names::feature_name(name).map_err(|e| e.to_string())?;
        let priority = match ev.str_attr(attr::FEATURE_PRIORITY) {
            None => None,
            Some(p) => Some(Priority::parse(p).ok_or_else(|| format!("unknown priority {p:?}"))?),
        };
        Ok(FeatureRequest {
            name,
            description: ev.str_attr(attr::FEATURE_DESCRIPTION),
            priority,
            estimated_effort: clamped(ev.attr(attr::FEATURE_ESTIMATED_EFFORT), 1, 100),
            languages: list(ev, attr::FEATURE_LANGUAGES),
            frameworks: list(ev, attr::FEATURE_FRAMEWORKS),
            expertise_areas: list(ev, attr::FEATURE_EXPERTISE_AREAS),
            requirements: list(ev, attr::FEATURE_REQUIREMENTS),
            acceptance_criteria: list(ev, attr::FEATURE_ACCEPTANCE_CRITERIA),
            paths: list(ev, attr::FEATURE_PATHS),
            allow_overlap: ev.attr(attr::FEATURE_ALLOW_OVERLAP).and_then(as_bool) == Some(true),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::FEATURE_NAME, self.name);
        out.opt_str(attr::FEATURE_DESCRIPTION, self.description);
        out.int(
            attr::FEATURE_ESTIMATED_EFFORT,
            self.estimated_effort.map(i64::from),
        );
        out.opt_str(attr::FEATURE_PRIORITY, self.priority.map(Priority::as_str));
        out.list_if_any(attr::FEATURE_LANGUAGES, &self.languages);
        out.list_if_any(attr::FEATURE_FRAMEWORKS, &self.frameworks);
        out.list_if_any(attr::FEATURE_EXPERTISE_AREAS, &self.expertise_areas);
        out.list_if_any(attr::FEATURE_REQUIREMENTS, &self.requirements);
        out.list_if_any(attr::FEATURE_ACCEPTANCE_CRITERIA, &self.acceptance_criteria);
        out.list_if_any(attr::FEATURE_PATHS, &self.paths);
        if self.allow_overlap {
            out.bool(attr::FEATURE_ALLOW_OVERLAP, true);
        }
    }
}

/// The feature an operator's span names, or the reason it is refused without one.
fn named<'a>(ev: &Event<'a>) -> Result<&'a str, String> {
    required(ev, attr::FEATURE_NAME, || {
        format!("{} needs feature.name", ev.span.name)
    })
}

/// `feature.cancel`: an operator withdraws a feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancel<'a> {
    pub feature_name: &'a str,
    pub reason: Option<&'a str>,
}

impl<'a> Cancel<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        Ok(Cancel {
            feature_name: named(ev)?,
            reason: ev.str_attr(attr::CANCEL_REASON),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.opt_str(attr::CANCEL_REASON, self.reason);
    }
}

/// `feature.budget`: what a feature may spend on its agents' LLM requests. A limit of 0 or
/// less, or none, is no limit of that kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget<'a> {
    pub feature_name: &'a str,
    pub usd: Option<f64>,
    pub tokens: Option<i64>,
}

impl<'a> Budget<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let usd = ev.double_attr(attr::BUDGET_USD);
        if usd.is_some_and(|u| !u.is_finite()) {
            return Err("budget.usd must be a finite number of dollars".into());
        }
        Ok(Budget {
            feature_name: named(ev)?,
            usd,
            tokens: ev.int_attr(attr::BUDGET_TOKENS),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.double(attr::BUDGET_USD, self.usd);
        out.int(attr::BUDGET_TOKENS, self.tokens);
    }
}

/// `feature.reopen`: an operator puts a cancelled or completed feature back in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Reopen<'a> {
    pub feature_name: &'a str,
    pub reason: Option<&'a str>,
}

impl<'a> Reopen<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        Ok(Reopen {
            feature_name: named(ev)?,
            reason: ev.str_attr(attr::REOPEN_REASON),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.opt_str(attr::REOPEN_REASON, self.reason);
    }
}

closed_set! {
    /// `review.verdict`: a person's word on a submitted feature held for approval.
    ReviewVerdict {
        /// It may merge.
        Approved = "approved",
        /// Back to its agent with the reason.
        Rejected = "rejected",
    }
}

/// `feature.review`: a person approves a submitted feature, or rejects it with a reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Review<'a> {
    pub feature_name: &'a str,
    pub verdict: ReviewVerdict,
    pub reason: Option<&'a str>,
}

impl<'a> Review<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let verdict = ev
            .str_attr(attr::REVIEW_VERDICT)
            .ok_or_else(|| "review.verdict is missing".to_string())?;
        let verdict = <ReviewVerdict as super::Closed>::parse(verdict)
            .ok_or_else(|| format!("review.verdict {verdict:?} is not approved or rejected"))?;
        let reason = ev
            .str_attr(attr::REVIEW_REASON)
            .filter(|r| !r.trim().is_empty());
        if verdict == ReviewVerdict::Rejected && reason.is_none() {
            return Err("a rejection needs review.reason: what the agent is to change".into());
        }
        Ok(Review {
            feature_name: named(ev)?,
            verdict,
            reason,
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.str(attr::REVIEW_VERDICT, self.verdict.as_str());
        out.opt_str(attr::REVIEW_REASON, self.reason);
    }
}
