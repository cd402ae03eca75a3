//! Runs the timers a sans-IO client transaction asks for
//! ([`Action::Schedule`](super::transaction::Action::Schedule),
//! [`Action::Cancel`](super::transaction::Action::Cancel)) as actix timers of the actor that
//! drives it, so a firing comes back to that actor as an ordinary callback.

use std::collections::HashMap;
use std::time::Instant;

use actix::{Actor, AsyncContext, Context, SpawnHandle};

use super::transaction::TimerKind;

/// The armed timers of one transaction.
#[derive(Debug, Default)]
pub struct TransactionTimers(HashMap<TimerKind, SpawnHandle>);

impl TransactionTimers {
    /// Arms `kind` to call `fire` at `at` (now, if `at` passed), replacing an earlier arming.
    pub fn schedule<A, F>(&mut self, ctx: &mut Context<A>, kind: TimerKind, at: Instant, fire: F)
    where
        A: Actor<Context = Context<A>>,
        F: FnOnce(&mut A, &mut Context<A>) + 'static,
    {
        self.cancel(ctx, kind);
        let after = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(after, fire);
        self.0.insert(kind, handle);
    }

    /// Disarms `kind`.
    pub fn cancel<A>(&mut self, ctx: &mut Context<A>, kind: TimerKind)
    where
        A: Actor<Context = Context<A>>,
    {
        if let Some(handle) = self.0.remove(&kind) {
            ctx.cancel_future(handle);
        }
    }

    /// Forgets `kind` after it fired (its handle is spent).
    pub fn fired(&mut self, kind: TimerKind) {
        self.0.remove(&kind);
    }

    /// Disarms everything.
    pub fn cancel_all<A>(&mut self, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>>,
    {
        for (_, handle) in self.0.drain() {
            ctx.cancel_future(handle);
        }
    }
}
