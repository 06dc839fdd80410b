//! Who answers for a check, and what an answer is.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Extensions, Uri};

use crate::audit::Offer;
use crate::problem::Problem;
use crate::state::{Admission, Check, MAX_CHECKS, Outcome, PlanFull};

/// What an owner sees of the request: its URI and extensions (the
/// principal, tenant and request context the outer layers inserted).
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The request URI.
    pub uri: &'a Uri,
    /// The request extensions.
    pub extensions: &'a Extensions,
}

/// A refusal: the problem for the client and its offered audit event
/// (settled before answering; a refused event answers 503 instead).
#[derive(Debug)]
pub struct Refusal {
    /// The answer.
    pub problem: Problem,
    /// The refusal's audit event, as the owner's sink took it.
    pub audit: Offer,
}

impl Refusal {
    /// A refusal whose audit event (if any) is already recorded.
    pub fn new(problem: Problem) -> Self {
        Self {
            problem,
            audit: Offer::Done(Ok(())),
        }
    }
}

/// Work a passed check still has to do before the request proceeds.
pub enum AfterAdmit {
    /// Nothing: proceed.
    Pass,
    /// Refuse after all (the owner's own final check failed).
    Refuse(Box<Refusal>),
    /// Await this first (rare: a session touch); `Some` refuses.
    Later(Pin<Box<dyn Future<Output = Option<Refusal>> + Send>>),
}

impl std::fmt::Debug for AfterAdmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AfterAdmit::Pass => f.write_str("Pass"),
            AfterAdmit::Refuse(r) => f.debug_tuple("Refuse").field(r).finish(),
            AfterAdmit::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// The layer that contributed a check, answering for its outcome.
pub trait CheckOwner: Send + Sync + 'static {
    /// The answer for `check` that did not pass: `outcome` is
    /// [`Outcome::Dead`], a refused rate or counter, or
    /// [`Outcome::Failed`]. `None` lets the request through (a rate limit
    /// failing open).
    fn refuse(&self, check: &Check, outcome: &Outcome, request: RequestView<'_>)
    -> Option<Refusal>;

    /// Called for `check` once every check passed, in plan order. The
    /// default has nothing to do.
    fn admitted(&self, check: &Check, outcome: &Outcome, request: RequestView<'_>) -> AfterAdmit {
        let _ = (check, outcome, request);
        AfterAdmit::Pass
    }
}

/// The request extension deferred layers add their checks to; the
/// [`AdmitLayer`](super::AdmitLayer) takes it out and runs it.
#[derive(Clone, Default)]
pub struct PendingAdmission {
    pub(super) plan: Admission,
    pub(super) owners: [Option<Arc<dyn CheckOwner>>; MAX_CHECKS],
}

impl std::fmt::Debug for PendingAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAdmission")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl PendingAdmission {
    /// Adds `check`, answered for by `owner`, to the request's plan
    /// (creating the plan on the first check). Fails when the plan is full.
    pub fn add(
        extensions: &mut Extensions,
        check: Check,
        owner: &Arc<dyn CheckOwner>,
    ) -> Result<(), PlanFull> {
        if extensions.get::<PendingAdmission>().is_none() {
            extensions.insert(PendingAdmission::default());
        }
        let Some(pending) = extensions.get_mut::<PendingAdmission>() else {
            return Err(PlanFull(check));
        };
        let index = pending.plan.push(check)?;
        pending.owners[index] = Some(owner.clone());
        Ok(())
    }

    /// The plan so far.
    pub fn plan(&self) -> &Admission {
        &self.plan
    }
}

/// Marks a response as an admission's refusal (beside
/// [`GuardRefusal`](crate::guard::GuardRefusal)): the plan's counter
/// charges were taken back already, so an outer layer that charged through
/// the plan (a tenant's quota) has nothing to give back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionRefused;
