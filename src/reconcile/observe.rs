//! The first step of a pass: read the store and the engine, then decide. Observing only reads;
//! what a pass creates before planning (a new database's secret) is the `prepare` step, which a
//! dry run skips.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use super::{ReconcileError, Reconciler};
use crate::clock::{now_millis, Millis};
use crate::engine::{ContainerSpec, Engine, Observed};
use crate::kinds::network::{self, NetworkPlan, ObservedNetworks};
use crate::kinds::{self, database};
use crate::manifest::server::VolumeType;
use crate::manifest::ManifestError;
use crate::manifest::{Object, ObjectKey};
use crate::plan::{plan, Plan, PlanOptions};
use crate::source::{emptied_errors, merge, Origin, Snapshot};
use crate::store::{DatabaseSecret, Status, StoredObject};

/// What a pass saw, and what it decided from that.
pub(super) struct Observation {
    /// Pruning to nothing is allowed: by the flag, or because every object was applied through
    /// the API, whose deletions are explicit.
    pub allow_empty: bool,
    pub stored: Vec<StoredObject>,
    /// The sources' errors, with those of files that define nothing now but did before.
    pub errors: Vec<ManifestError>,
    /// Objects gone from their file or row, kept until the prune delay ends.
    pub pending_prunes: Vec<(ObjectKey, Millis)>,
    /// This instance's containers that another state file's controller created (left alone).
    pub foreign: Vec<Observed>,
    pub statuses: HashMap<ObjectKey, Status>,
    pub desired: Vec<Object>,
    pub specs: HashMap<ObjectKey, ContainerSpec>,
    pub plan: Plan,
    pub now: Millis,
    pub secrets: HashMap<String, DatabaseSecret>,
    pub networks: NetworkPlan,
    pub observed: Vec<Observed>,
    /// Every Secret's value, or why it has none; and those the host policy refuses.
    pub secret_values: kinds::secret::Values,
    pub secret_refused: HashMap<ObjectKey, String>,
    /// What observing did worth an event (a database's password rotated).
    pub notes: Vec<crate::store::NewEvent>,
}

impl<R: Engine> Reconciler<R> {
    /// Reads the store, merges the snapshot, lists the engine once and plans. Outside a dry run
    /// it first gives new databases their secrets.
    pub(super) async fn observe(
        &self,
        snapshot: &Snapshot,
        dry_run: bool,
    ) -> Result<Observation, ReconcileError> {
        let instance = &self.options.instance;
        let reads = async {
            let stored = self.store.objects(instance).await?;
            let statuses = self.store.statuses_by_key(instance).await?;
            let intents = self.store.intents(instance).await?;
            Ok::<_, ReconcileError>((stored, statuses, intents))
        };
        let (reads, listing) = tokio::join!(reads, self.listing());
        let ((stored, statuses, intents), listing) = (reads?, listing?);
        let mut desired = merge(snapshot, &stored);
        if self.engine.is_swarm() {
            // A service stands for every replica of its server.
            desired.retain(|o| {
                !matches!(o.spec, crate::manifest::Spec::Server(_))
                    || crate::manifest::replicas::replica_index(&o.name) == 0
            });
        }
        self.pin_images(&mut desired, dry_run).await?;
        let mut errors = snapshot.errors.clone();
        errors.extend(emptied_errors(snapshot, &stored));
        let now = now_millis();
        let (desired, pending_prunes) = if dry_run {
            (desired, Vec::new())
        } else {
            self.delay_prunes(desired, &stored, now)
        };
        let allow_empty = self.options.allow_empty || only_applied(&stored);
        let all_secrets = self.store.database_secrets().await?;
        let mut secrets = database::secrets_of(instance, &all_secrets);
        let stranded = self.stranded_volumes(&desired, &secrets).await?;
        if !dry_run {
            self.prepare(&all_secrets, &desired, &stranded, &mut secrets)
                .await?;
        }
        let manifests = self.options.manifests.as_deref();
        let secret_refused: HashMap<ObjectKey, String> = desired
            .iter()
            .filter(|o| matches!(o.spec, crate::manifest::Spec::Secret(_)))
            .filter_map(|o| Some((o.key(), self.options.host_policy.refusal(o, manifests)?)))
            .collect();
        let roots = self.options.host_policy.roots(manifests);
        let secret_values = self
            .secret_resolver
            .resolve_all(&desired, &secret_refused, &roots);
        let passwords = database::use_secret_passwords(&desired, &secret_values, &mut secrets);
        if !dry_run {
            for name in &passwords.changed {
                if let Some(s) = secrets.get(name) {
                    self.store
                        .set_database_password(instance, name, &s.password)
                        .await?;
                }
            }
        }
        let (observed, foreign) = claim(
            listing.containers,
            self.store.identity(),
            self.options.take_over,
        );
        // The policy decides before any effect: a refused database is neither rotated, seeded
        // nor upgraded (its `restoreFrom` never read, its backup path never bound).
        let mut refused = self.refusals(&desired, &stranded, &foreign);
        let admitted: Vec<Object> = desired
            .iter()
            .filter(|o| !refused.contains_key(&o.key()))
            .cloned()
            .collect();
        let ready = if dry_run {
            HashMap::new()
        } else {
            database::probe_all(&admitted, &observed, &statuses, &secrets).await
        };
        let mut ready = ready;
        let mut notes = Vec::new();
        if !dry_run {
            notes = self
                .rotate_passwords(&admitted, &passwords.rotations, &ready, &mut secrets)
                .await?;
            notes.extend(self.seed_databases(&admitted, &secrets, &mut ready).await);
        }
        refused.extend(passwords.holds);
        if !dry_run {
            let (upgrades, holds) = self
                .upgrade_databases(&admitted, &observed, &statuses, &ready, &mut secrets)
                .await?;
            notes.extend(upgrades);
            refused.extend(holds);
        }
        // Objects whose rollout failed run their last Ready revision instead.
        let (running, rolled_back) = self.rolled_back(&desired, &stored, &intents).await?;
        let files = self.host_files(&running, &secret_values, &roots, &mut refused);
        let networks = network::plan(
            instance,
            &desired,
            &self.observe_networks(&desired, listing.networks).await?,
            self.options.subnet_pool.as_ref(),
        );
        let through_gateway = database::reached_through_gateway(&running);
        let host_gateway = if through_gateway.is_empty() || self.engine.is_swarm() {
            None
        } else {
            self.engine.host_gateway().await?
        };
        let ctx = kinds::Context {
            instance,
            state_id: self.store.identity(),
            statuses: &statuses,
            secrets: &secrets,
            ready: &ready,
            refused: &refused,
            networks: &networks,
            files: &files,
            intents: &intents,
            rolled_back: &rolled_back,
            swarm: self.engine.is_swarm(),
            through_gateway: &through_gateway,
            host_gateway,
        };
        let (wanted, specs) = kinds::desired(&running, &ctx);
        let plan = plan(
            &wanted,
            &observed,
            PlanOptions {
                allow_empty,
                backoff: self.options.backoff,
                now,
            },
        );
        Ok(Observation {
            allow_empty,
            stored,
            errors,
            pending_prunes,
            foreign,
            statuses,
            desired,
            specs,
            plan,
            now,
            secrets,
            networks,
            observed,
            secret_values,
            secret_refused,
            notes,
        })
    }

    /// Alters the roles of ready databases whose password Secret changed (logged in with the
    /// password they have), then records and uses the new one; says so in an event. A failure
    /// keeps the old password everywhere and is one event per distinct error, retried at each
    /// pass.
    async fn rotate_passwords(
        &self,
        desired: &[Object],
        rotations: &[(String, String)],
        ready: &HashMap<ObjectKey, Option<String>>,
        secrets: &mut HashMap<String, DatabaseSecret>,
    ) -> Result<Vec<crate::store::NewEvent>, ReconcileError> {
        let mut notes = Vec::new();
        for (name, new) in rotations {
            let key = ObjectKey::new(crate::manifest::Kind::Database, name.clone());
            let found = desired.iter().find_map(|o| match &o.spec {
                crate::manifest::Spec::Database(d) if o.name == *name => Some((o, d)),
                _ => None,
            });
            let (Some((o, d)), Some(s), true) =
                (found, secrets.get_mut(name), ready.contains_key(&key))
            else {
                continue;
            };
            let conn = database::Connection::from_host(o, d, s);
            let result = database::rotate(&conn, &s.password, new).await;
            // Whether this failure is new (the lock is never held across an await).
            let new_failure = is_new_failure(&self.rotation_failures, name, result.as_ref().err());
            match result {
                Ok(()) => {
                    self.store
                        .set_database_password(&self.options.instance, name, new)
                        .await?;
                    s.password.clone_from(new);
                    notes.push(crate::store::NewEvent {
                        key: Some(key),
                        reason: "password-rotated",
                        message: format!(
                            "role {} now has its password Secret's new value; the servers that use it follow",
                            conn.user
                        ),
                    });
                }
                Err(e) if new_failure => notes.push(crate::store::NewEvent {
                    key: Some(key),
                    reason: "password-rotation-failed",
                    message: format!(
                        "cannot give role {} its password Secret's new value (the old one stays): {e}",
                        conn.user
                    ),
                }),
                Err(_) => {}
            }
        }
        Ok(notes)
    }

    /// The PostgreSQL major version of `image`, asked of the image once per controller.
    async fn image_major(&self, image: &str) -> Result<u32, String> {
        let known = self
            .image_majors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(image)
            .copied();
        if let Some(m) = known {
            return Ok(m);
        }
        let m = crate::kinds::upgrade::image_major(&self.engine, &self.options.instance, image)
            .await
            .map_err(|e| e.to_string())?;
        self.image_majors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(image.to_owned(), m);
        Ok(m)
    }

    /// Databases whose new image is another PostgreSQL major version than their data: each
    /// ready one is upgraded here (dump, restore into a new volume, check) before the plan
    /// recreates it on that volume. A failed upgrade holds the spec (the old server runs on)
    /// until the manifest changes; so does an upgrade that cannot be done yet (the database is
    /// not ready) or a downgrade. Returns the events and the holds.
    async fn upgrade_databases(
        &self,
        desired: &[Object],
        observed: &[crate::engine::Observed],
        statuses: &HashMap<ObjectKey, crate::store::Status>,
        ready: &HashMap<ObjectKey, Option<String>>,
        secrets: &mut HashMap<String, DatabaseSecret>,
    ) -> Result<(Vec<crate::store::NewEvent>, HashMap<ObjectKey, String>), ReconcileError> {
        use crate::kinds::upgrade;
        let instance = &self.options.instance;
        let mut notes = Vec::new();
        let mut holds = HashMap::new();
        if self.engine.is_swarm() {
            return Ok((notes, holds));
        }
        for o in desired {
            let crate::manifest::Spec::Database(d) = &o.spec else {
                continue;
            };
            let key = o.key();
            let image = d.image();
            let Some(c) = observed
                .iter()
                .find(|c| c.key.as_ref() == Some(&key) && c.image.is_some())
            else {
                continue;
            };
            let Some(running_image) = c.image.as_deref().filter(|i| *i != image) else {
                continue;
            };
            let Some(secret) = secrets.get(&o.name).cloned() else {
                continue;
            };
            let hash = o.spec_hash();
            if let Some((failed, why)) = self.store.upgrade_failed(instance, &o.name).await? {
                if failed == hash {
                    holds.insert(key, format!("{why}; the old version runs on, its data untouched; change the manifest to try again"));
                    continue;
                }
            }
            // The data's major: what its server said at its last login, else its image's.
            let said = statuses
                .get(&key)
                .and_then(|s| s.lifecycle.ready_as.as_deref())
                .and_then(upgrade::major_of);
            let from = match said {
                Some(m) => Ok(m),
                None => self.image_major(running_image).await,
            };
            let to = self.image_major(&image).await;
            let (from, to) = match (from, to) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(e), _) | (_, Err(e)) => {
                    holds.insert(key, format!("cannot tell whether {image} is another PostgreSQL major version than the data's: {e}"));
                    continue;
                }
            };
            if from == to {
                continue;
            }
            if to < from {
                holds.insert(key, format!("the data is PostgreSQL {from}'s, which PostgreSQL {to} ({image}) cannot run; a downgrade is a restore of a dump (db restore) into a new database"));
                continue;
            }
            if !ready.contains_key(&key) {
                holds.insert(key, format!("an upgrade from PostgreSQL {from} to {to} waits for the running database to be ready"));
                continue;
            }
            let current = database::data_volume(instance, &o.name, Some(&secret));
            let subject = crate::kinds::backup::Subject {
                instance,
                object: o,
                spec: d,
                secret: Some(&secret),
                host: (&self.recorded).into(),
            };
            tracing::info!("{key}: upgrading PostgreSQL {from} to {to}");
            match upgrade::upgrade(&self.engine, &subject, &current, &image, to).await {
                Ok(done) => {
                    self.store
                        .set_database_volumes(instance, &o.name, Some(&done.volume), Some(&current))
                        .await?;
                    self.store
                        .set_upgrade_failed(instance, &o.name, None)
                        .await?;
                    if let Some(s) = secrets.get_mut(&o.name) {
                        s.volume = Some(done.volume.clone());
                        s.old_volume = Some(current.clone());
                    }
                    notes.push(crate::store::NewEvent {
                        key: Some(key),
                        reason: "upgraded",
                        message: format!(
                            "PostgreSQL {from} -> {to}: {} tables restored into {}; {current} is kept until `dockhand db upgrade {} --finish`",
                            done.tables, done.volume, o.name
                        ),
                    });
                }
                Err(e) => {
                    let why = e.to_string();
                    self.store
                        .set_upgrade_failed(instance, &o.name, Some((&hash, &why)))
                        .await?;
                    notes.push(crate::store::NewEvent {
                        key: Some(key.clone()),
                        reason: "upgrade-failed",
                        message: format!("PostgreSQL {from} -> {to}: {why}; PostgreSQL {from} runs on, its data untouched"),
                    });
                    holds.insert(key, format!("{why}; the old version runs on, its data untouched; change the manifest to try again"));
                }
            }
        }
        Ok((notes, holds))
    }

    /// Fills each new database (one that just accepted its first login and never held data)
    /// that names a `restoreFrom` with that backup, before it counts as ready: a database
    /// whose seeding failed is not ready, so its readiness timeout replaces it (with its
    /// never-initialised volume) and the seeding is tried again from scratch.
    async fn seed_databases(
        &self,
        desired: &[Object],
        secrets: &HashMap<String, crate::store::DatabaseSecret>,
        ready: &mut HashMap<ObjectKey, Option<String>>,
    ) -> Vec<crate::store::NewEvent> {
        use crate::kinds::backup::{self, Source, Subject};
        let mut notes = Vec::new();
        for o in desired {
            let crate::manifest::Spec::Database(d) = &o.spec else {
                continue;
            };
            let (Some(from), Some(secret)) = (&d.restore_from, secrets.get(&o.name)) else {
                continue;
            };
            if secret.initialized || !ready.contains_key(&o.key()) {
                continue;
            }
            let source = match (&d.backup, from.is_latest()) {
                (Some(b), true) => Source::Latest(b.to.clone()),
                (None, true) => continue,
                (_, false) => Source::RestoreFrom(std::path::PathBuf::from(&from.0)),
            };
            let subject = Subject {
                instance: &self.options.instance,
                object: o,
                spec: d,
                secret: Some(secret),
                host: (&self.recorded).into(),
            };
            let result = backup::restore(&self.engine, &subject, &source)
                .await
                .map_err(|e| e.to_string());
            let new_failure = is_new_failure(&self.seed_failures, &o.name, result.as_ref().err());
            match result {
                Ok(file) => notes.push(crate::store::NewEvent {
                    key: Some(o.key()),
                    reason: "restored",
                    message: format!("seeded from {file} (restoreFrom: {})", from.0),
                }),
                Err(e) => {
                    ready.remove(&o.key());
                    if new_failure {
                        notes.push(crate::store::NewEvent {
                            key: Some(o.key()),
                            reason: "restore-failed",
                            message: format!("cannot seed it from {}: {e}", from.0),
                        });
                    }
                }
            }
        }
        notes
    }

    /// The objects to run: each as its source says, except those whose rollout failed, which
    /// run the revision they were rolled back to (keeping their replica count); and why those
    /// do.
    async fn rolled_back(
        &self,
        desired: &[Object],
        stored: &[StoredObject],
        intents: &HashMap<ObjectKey, crate::store::Intent>,
    ) -> Result<(Vec<Object>, HashMap<ObjectKey, String>), ReconcileError> {
        let instance = &self.options.instance;
        let mut running = Vec::with_capacity(desired.len());
        let mut why = HashMap::new();
        for o in desired {
            let key = o.key();
            let rollback = kinds::intents_of(intents, &key)
                .find_map(|(by, i)| Some((by, i.rollback.clone()?)))
                .filter(|(_, r)| r.from == o.spec_hash());
            let Some((by, r)) = rollback else {
                running.push(o.clone());
                continue;
            };
            let mut found = self.store.revision_with_hash(instance, &key, &r.to).await?;
            if found.is_none() && by != key {
                found = self.store.revision_with_hash(instance, &by, &r.to).await?;
            }
            let Some((revision, old)) = found else {
                running.push(o.clone());
                continue;
            };
            let generation = stored
                .iter()
                .find(|s| s.object.key() == key)
                .map_or(0, |s| s.generation);
            let mut spec = old.spec;
            if let (crate::manifest::Spec::Server(now), crate::manifest::Spec::Server(then)) =
                (&o.spec, &mut spec)
            {
                then.replicas = now.replicas;
            }
            running.push(Object {
                labels: old.labels,
                spec,
                ..o.clone()
            });
            why.insert(
                key,
                format!(
                    "rolled back to revision {revision}: revision {generation} was {}; change the spec to try again",
                    r.reason
                ),
            );
        }
        Ok((running, why))
    }

    /// Pins the servers that follow their image's tag to their recorded digest. One without a
    /// digest yet gets the engine's copy's at once; else the registry is asked beside the pass
    /// (at most once a minute per image, each question bounded), which records the digest and
    /// asks for a pass: a registry that never answers never holds a pass up. Until then the
    /// server runs unpinned, as any server.
    async fn pin_images(
        &self,
        desired: &mut [Object],
        dry_run: bool,
    ) -> Result<(), ReconcileError> {
        if !desired.iter().any(|o| kinds::image::polled(o).is_some()) {
            return Ok(());
        }
        let instance = &self.options.instance;
        let mut digests = self.store.image_digests(instance).await?;
        let missing = kinds::image::pin(desired, &digests);
        if missing.is_empty() || dry_run {
            return Ok(());
        }
        let now = now_millis();
        for (name, image) in missing {
            let recent = {
                let mut tried = self
                    .image_tries
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let last = tried.get(&image).copied();
                let recent = last.is_some_and(|t| now < t + 60_000);
                if !recent {
                    tried.insert(image.clone(), now);
                }
                recent
            };
            if recent {
                continue;
            }
            if let Ok(Some(d)) = self.engine.local_digest(&image).await {
                self.store
                    .set_image_digest(instance, &name, &image, &d)
                    .await?;
                digests.insert(name, (image, d));
                continue;
            }
            let (engine, store, instance, wake) = (
                self.engine.clone(),
                self.store.clone(),
                instance.clone(),
                self.wake.clone(),
            );
            tokio::spawn(async move {
                let asked = tokio::time::timeout(
                    kinds::image::REGISTRY_DEADLINE,
                    engine.registry_digest(&image),
                )
                .await;
                let Ok(Ok(d)) = asked else {
                    return;
                };
                match store.set_image_digest(&instance, &name, &image, &d).await {
                    Ok(()) => {
                        if let Some(wake) = wake {
                            wake();
                        }
                    }
                    Err(e) => tracing::warn!("cannot record the digest of {image}: {e}"),
                }
            });
        }
        kinds::image::pin(desired, &digests);
        Ok(())
    }

    /// Keeps the stored objects that vanished from their file or row less than the prune delay
    /// ago, so a file caught mid-rewrite removes nothing. API deletions are explicit and act
    /// at once.
    fn delay_prunes(
        &self,
        mut desired: Vec<Object>,
        stored: &[StoredObject],
        now: Millis,
    ) -> (Vec<Object>, Vec<(ObjectKey, Millis)>) {
        let delay = self.options.prune_delay.as_millis() as Millis;
        let present: HashSet<ObjectKey> = desired.iter().map(Object::key).collect();
        let mut vanished = self
            .vanished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut pending = Vec::new();
        let mut still_gone = HashSet::new();
        for s in stored {
            let key = s.object.key();
            if present.contains(&key) || Origin::of(&s.object.source) == Origin::Api {
                continue;
            }
            let since = *vanished.entry(key.clone()).or_insert(now);
            still_gone.insert(key.clone());
            if now < since + delay {
                pending.push((key, since + delay));
                desired.push(s.object.clone());
            }
        }
        vanished.retain(|k, _| still_gone.contains(k));
        desired.sort_by_key(Object::key);
        (desired, pending)
    }

    /// The objects that may not be acted on, and why: refused by the host policy, or a
    /// database whose data volume outlived its state file.
    fn refusals(
        &self,
        desired: &[Object],
        stranded: &HashSet<String>,
        foreign: &[Observed],
    ) -> HashMap<ObjectKey, String> {
        let manifests = self.options.manifests.as_deref();
        desired
            .iter()
            .filter_map(|o| {
                let key = o.key();
                let theirs = foreign.iter().find(|c| c.key.as_ref() == Some(&key));
                let why = match &o.spec {
                    // The data comes first: a lost state file also left its containers
                    // under the old identity, which --take-over claims once recovered.
                    crate::manifest::Spec::Database(_) if stranded.contains(&o.name) => {
                        let mut m = database::stranded_message(&self.options.instance, &o.name);
                        if let Some(c) = theirs {
                            m.push_str(&format!(
                                "; its container {} was made under the lost state file: pass --take-over once the password is adopted",
                                c.name
                            ));
                        }
                        Some(m)
                    }
                    _ if theirs.is_some() => {
                        theirs.map(|c| foreign_message(c, &self.options.instance))
                    }
                    // Decided before the values were read (`secret_refused`), once a pass.
                    crate::manifest::Spec::Secret(_) => None,
                    _ => self.options.host_policy.refusal(o, manifests),
                };
                Some((o.key(), why?))
            })
            .collect()
    }

    /// The env files, read-only bind sources and build contexts of the servers the policy let
    /// be, read (again if changed); a server with one that cannot be read or parsed is held
    /// back with why.
    fn host_files(
        &self,
        desired: &[Object],
        secret_values: &kinds::secret::Values,
        roots: &[std::path::PathBuf],
        refused: &mut HashMap<ObjectKey, String>,
    ) -> kinds::HostFiles {
        let mut out = kinds::HostFiles::default();
        for o in desired {
            let crate::manifest::Spec::Server(s) = &o.spec else {
                continue;
            };
            if refused.contains_key(&o.key()) {
                continue;
            }
            if let Err(why) = self.server_files(&o.name, s, roots, &mut out) {
                refused.insert(o.key(), why);
                continue;
            }
            match kinds::secret::lookup(s, secret_values) {
                Ok(found) => out
                    .secrets
                    .extend(found.into_iter().map(|(n, v)| (n.to_owned(), v.clone()))),
                Err(why) => {
                    refused.insert(o.key(), why);
                }
            }
        }
        out
    }

    /// Reads what one server takes from the host into `out` (each path once per pass), or says
    /// which field could not be read.
    fn server_files(
        &self,
        name: &str,
        s: &crate::manifest::ServerSpec,
        roots: &[std::path::PathBuf],
        out: &mut kinds::HostFiles,
    ) -> Result<(), String> {
        for (i, f) in s.env_file.0.iter().enumerate() {
            if !out.env.contains_key(&f.0) {
                let loaded = self
                    .env_file_cache
                    .load(std::path::Path::new(&f.0), roots)
                    .map_err(|why| format!("spec.envFile[{i}]: {why}"))?;
                out.env.insert(f.0.clone(), loaded);
            }
        }
        for (i, v) in s.volumes.iter().enumerate() {
            if v.kind == VolumeType::Bind && v.read_only && !out.config.contains_key(&v.source) {
                let digest = self
                    .config_cache
                    .digest(std::path::Path::new(&v.source), roots)
                    .map_err(|why| format!("spec.volumes[{i}].source: {why}"))?;
                out.config.insert(v.source.clone(), digest);
            }
        }
        let base = crate::manifest::replicas::replica_of(name);
        if let Some(b) = s.build.as_ref().filter(|_| !out.builds.contains_key(base)) {
            let image = s.image.as_ref().map(|i| i.0.as_str());
            let spec =
                kinds::build::prepare(&self.options.instance, base, b, image, &self.config_cache)
                    .map_err(|why| format!("spec.build: {why}"))?;
            out.builds.insert(base.to_owned(), spec);
        }
        Ok(())
    }

    /// Databases with no secret whose data volume (this instance's) exists anyway: the state
    /// file that knew its password was lost or replaced. One volume lookup per such database,
    /// none once it has a secret. A stranger's volume is left to `VolumeConflict`.
    async fn stranded_volumes(
        &self,
        desired: &[Object],
        secrets: &HashMap<String, DatabaseSecret>,
    ) -> Result<HashSet<String>, ReconcileError> {
        let mut stranded = HashSet::new();
        for o in database::without_secret(desired, secrets) {
            let volume = database::volume_name(&self.options.instance, &o.name);
            let labels = self.engine.volume_labels(&volume).await?;
            if labels.is_some_and(|l| crate::engine::labels::is_ours(&l, &self.options.instance)) {
                stranded.insert(o.name.clone());
            }
        }
        Ok(stranded)
    }

    /// Creates and stores the secrets of databases seen for the first time (never of one whose
    /// data volume exists: a new password could not open it).
    async fn prepare(
        &self,
        all: &[(String, DatabaseSecret)],
        desired: &[Object],
        stranded: &HashSet<String>,
        secrets: &mut HashMap<String, DatabaseSecret>,
    ) -> Result<(), ReconcileError> {
        let instance = &self.options.instance;
        for secret in database::new_secrets(instance, all, desired, stranded)? {
            self.store.insert_database_secret(instance, &secret).await?;
            secrets.insert(secret.name.clone(), secret);
        }
        Ok(())
    }

    /// The engine's networks (`listed`, when the pass's listing asked them). Skips the engine
    /// while no manifest involves networks and none of this instance's were seen last time, so
    /// such passes stay one container listing.
    async fn observe_networks(
        &self,
        desired: &[Object],
        listed: Option<Vec<crate::engine::NetworkInfo>>,
    ) -> Result<ObservedNetworks, ReconcileError> {
        if !network::involved(desired) && !self.had_networks.load(Ordering::Relaxed) {
            return Ok(ObservedNetworks::default());
        }
        let observed =
            network::observe(&self.engine, &self.options.instance, desired, listed).await?;
        let any = network::involved(desired) || !observed.ours.is_empty();
        self.had_networks.store(any, Ordering::Relaxed);
        Ok(observed)
    }
}

/// Records how `name`'s latest attempt ended (`error`, or none for a success) and says whether
/// it is a failure not seen just before: one event per distinct error, not one per pass. The
/// lock is never held across an await.
fn is_new_failure(
    failures: &std::sync::Mutex<HashMap<String, String>>,
    name: &str,
    error: Option<&String>,
) -> bool {
    let mut failures = failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match error {
        None => {
            failures.remove(name);
            false
        }
        Some(e) => failures.insert(name.to_owned(), e.clone()).as_ref() != Some(e),
    }
}

/// Splits the listing into the containers this controller may act on and those another state
/// file's controller created. With `take_over`, those are claimed: their spec hash is dropped,
/// so they are recreated under this state file's identity (or removed, if not desired).
/// Containers from before the identity label are this controller's.
pub(super) fn claim(
    observed: Vec<Observed>,
    identity: &str,
    take_over: bool,
) -> (Vec<Observed>, Vec<Observed>) {
    let (mut ours, mut foreign): (Vec<Observed>, Vec<Observed>) = observed
        .into_iter()
        .partition(|o| o.state_id.as_deref().is_none_or(|id| id == identity));
    if take_over {
        for mut o in foreign.drain(..) {
            o.spec_hash = None;
            ours.push(o);
        }
    }
    (ours, foreign)
}

/// Why an object whose container another controller created is held.
fn foreign_message(c: &Observed, instance: &str) -> String {
    format!(
        "its container {} was created by another dockhand controller of instance {instance:?} (a different state file); it is left alone: stop that controller, or pass --take-over to replace its containers with this one's",
        c.name
    )
}

/// Whether every stored object came from the API (so an empty desired state is explicit).
fn only_applied(stored: &[StoredObject]) -> bool {
    !stored.is_empty()
        && stored
            .iter()
            .all(|s| Origin::of(&s.object.source) == Origin::Api)
}

/// Desired objects that only the hold on their unreadable source keeps.
pub(super) fn held(desired: &[Object], snapshot: &Snapshot) -> Vec<ObjectKey> {
    desired
        .iter()
        .filter(|o| snapshot.held.contains(&Origin::of(&o.source)))
        .map(Object::key)
        .collect()
}
