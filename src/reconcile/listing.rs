//! The engine's side of a pass: its containers and this instance's networks, asked at once and
//! beside the pass's reads of the state file. `sync` asks them ahead, while it reads the
//! manifests, so a no-op pass waits for the engine's listing once, not after everything else.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{ReconcileError, Reconciler};
use crate::engine::{Engine, NetworkInfo, Observed};

/// How long a listing made ahead stays good for the next pass; older, it is asked again.
const AHEAD_FOR: Duration = Duration::from_secs(2);

/// What the engine showed of this instance.
pub(super) struct Listing {
    at: Instant,
    pub containers: Vec<Observed>,
    /// This instance's networks, when they were asked (see `Reconciler::observe_networks`).
    pub networks: Option<Vec<NetworkInfo>>,
}

impl<R: Engine> Reconciler<R> {
    /// Lists the engine now for the next pass, which then does not ask again.
    pub async fn list_ahead(&self) -> Result<(), ReconcileError> {
        let listing = self.list_engine().await?;
        *self
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(listing);
        Ok(())
    }

    /// The listing made ahead if it is recent, else a new one.
    pub(super) async fn listing(&self) -> Result<Listing, ReconcileError> {
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .filter(|l| l.at.elapsed() < AHEAD_FOR);
        match ahead {
            Some(l) => Ok(l),
            None => self.list_engine().await,
        }
    }

    async fn list_engine(&self) -> Result<Listing, ReconcileError> {
        let instance = &self.options.instance;
        let at = Instant::now();
        let networks = async {
            if self.had_networks.load(Ordering::Relaxed) {
                self.engine.list_networks(instance).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let (containers, networks) = tokio::join!(self.engine.list(instance), networks);
        Ok(Listing {
            at,
            containers: containers?,
            networks: networks?,
        })
    }
}
