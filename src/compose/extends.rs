//! `extends`: a service built on another one, of the same file or of another, merged as
//! Compose merges them: the extending service's scalars win, mappings merge key by key,
//! sequences are appended (mounts replace the base's at the same target).

use std::collections::BTreeMap;

use super::model::{ListOrMap, NamedList, Service, ShortOrLong};

fn map(base: Option<ListOrMap>, over: Option<ListOrMap>) -> Option<ListOrMap> {
    match (base, over) {
        (Some(mut b), Some(o)) => {
            for (k, v) in o.0 {
                match b.0.iter_mut().find(|(bk, _)| *bk == k) {
                    Some(slot) => slot.1 = v,
                    None => b.0.push((k, v)),
                }
            }
            Some(b)
        }
        (b, o) => o.or(b),
    }
}

fn list<T>(base: Option<Vec<T>>, over: Option<Vec<T>>) -> Option<Vec<T>> {
    match (base, over) {
        (Some(mut b), Some(o)) => {
            b.extend(o);
            Some(b)
        }
        (b, o) => o.or(b),
    }
}

/// Named entries (`networks`, `depends_on`): the extending service's win, by name.
fn named<M>(base: Option<NamedList<M>>, over: Option<NamedList<M>>) -> Option<NamedList<M>> {
    match (base, over) {
        (Some(mut b), Some(o)) => {
            for (k, v) in o.0 {
                b.0.retain(|(bk, _)| *bk != k);
                b.0.push((k, v));
            }
            Some(b)
        }
        (b, o) => o.or(b),
    }
}

/// The target of a mount, in either syntax.
fn target(v: &ShortOrLong<super::model::VolumeLong>) -> String {
    match v {
        ShortOrLong::Short(s) => super::forms::short_volume(s)
            .map(|m| m.target)
            .unwrap_or_default(),
        ShortOrLong::Long(l) => l.target.0.clone(),
    }
}

/// `over` on top of `base`.
pub fn merge(base: Service, over: Service) -> Service {
    let volumes = match (base.volumes, over.volumes) {
        (Some(b), Some(o)) => {
            let targets: Vec<String> = o.iter().map(target).collect();
            let mut out: Vec<_> = b
                .into_iter()
                .filter(|v| !targets.contains(&target(v)))
                .collect();
            out.extend(o);
            Some(out)
        }
        (b, o) => o.or(b),
    };
    let networks = named(base.networks, over.networks);
    let depends_on = named(base.depends_on, over.depends_on);
    let ulimits = match (base.ulimits, over.ulimits) {
        (Some(mut b), Some(o)) => {
            b.extend(o);
            Some(b)
        }
        (b, o) => o.or(b),
    };
    Service {
        environment: map(base.environment, over.environment),
        labels: map(base.labels, over.labels),
        sysctls: map(base.sysctls, over.sysctls),
        extra_hosts: match (base.extra_hosts, over.extra_hosts) {
            (Some(b), Some(o)) => {
                map(Some(ListOrMap(b.0)), Some(ListOrMap(o.0))).map(|m| super::model::HostList(m.0))
            }
            (b, o) => o.or(b),
        },
        ports: list(base.ports, over.ports),
        expose: list(base.expose, over.expose),
        secrets: list(base.secrets, over.secrets),
        configs: list(base.configs, over.configs),
        cap_add: list(base.cap_add, over.cap_add),
        cap_drop: list(base.cap_drop, over.cap_drop),
        devices: list(base.devices, over.devices),
        security_opt: list(base.security_opt, over.security_opt),
        volumes,
        networks,
        depends_on,
        ulimits,
        // Compose never inherits these from the base.
        extends: over.extends,
        image: over.image.or(base.image),
        build: over.build.or(base.build),
        command: over.command.or(base.command),
        entrypoint: over.entrypoint.or(base.entrypoint),
        env_file: over.env_file.or(base.env_file),
        network_mode: over.network_mode.or(base.network_mode),
        healthcheck: over.healthcheck.or(base.healthcheck),
        restart: over.restart.or(base.restart),
        deploy: over.deploy.or(base.deploy),
        scale: over.scale.or(base.scale),
        profiles: over.profiles.or(base.profiles),
        container_name: over.container_name.or(base.container_name),
        hostname: over.hostname.or(base.hostname),
        user: over.user.or(base.user),
        working_dir: over.working_dir.or(base.working_dir),
        privileged: over.privileged.or(base.privileged),
        shm_size: over.shm_size.or(base.shm_size),
        tmpfs: over.tmpfs.or(base.tmpfs),
        init: over.init.or(base.init),
        stop_signal: over.stop_signal.or(base.stop_signal),
        stop_grace_period: over.stop_grace_period.or(base.stop_grace_period),
        read_only: over.read_only.or(base.read_only),
        tty: over.tty.or(base.tty),
        stdin_open: over.stdin_open.or(base.stdin_open),
        mem_limit: over.mem_limit.or(base.mem_limit),
        cpus: over.cpus.or(base.cpus),
        pull_policy: over.pull_policy.or(base.pull_policy),
        pids_limit: over.pids_limit.or(base.pids_limit),
        links: list(base.links, over.links),
        dns: over.dns.or(base.dns),
        dns_search: over.dns_search.or(base.dns_search),
        dns_opt: over.dns_opt.or(base.dns_opt),
        platform: over.platform.or(base.platform),
        x_dockhand: over.x_dockhand.or(base.x_dockhand),
    }
}

/// Makes a base service's relative paths relative to the extending file's directory, when the
/// base comes from a file in `prefix` (relative to it).
pub fn rebase(s: &mut Service, prefix: &std::path::Path) {
    let re = |p: &str| -> String {
        if p.starts_with('/') || p.starts_with('~') {
            p.to_owned()
        } else {
            // Kept starting with `./`, so that a bind still reads as a path.
            let joined = crate::manifest::parse::lexical(&prefix.join(p));
            format!("./{}", joined.to_string_lossy())
        }
    };
    match &mut s.build {
        Some(ShortOrLong::Short(c)) => *c = re(c),
        Some(ShortOrLong::Long(l)) => {
            let c = l.context.as_ref().map_or(".".to_owned(), |c| c.0.clone());
            l.context = Some(super::model::Str(re(&c)));
        }
        None => {}
    }
    if let Some(f) = &mut s.env_file {
        for (p, _) in &mut f.0 {
            *p = re(p);
        }
    }
    for v in s.volumes.iter_mut().flatten() {
        match v {
            ShortOrLong::Short(text) => {
                if let Some((src, rest)) = text.split_once(':') {
                    if super::forms::is_path(src) {
                        *text = format!("{}:{rest}", re(src));
                    }
                }
            }
            ShortOrLong::Long(l) if l.kind.0 == "bind" => {
                if let Some(src) = &mut l.source {
                    src.0 = re(&src.0);
                }
            }
            ShortOrLong::Long(_) => {}
        }
    }
}

/// Resolves every `extends` among `services` (same file) with `load` for other files, which
/// returns the named file's services already resolved. Cycles are errors.
pub fn resolve(
    services: &BTreeMap<String, Service>,
    load: &dyn Fn(&str, &str) -> Result<Service, String>,
) -> Result<BTreeMap<String, Service>, (String, String)> {
    fn one(
        name: &str,
        services: &BTreeMap<String, Service>,
        load: &dyn Fn(&str, &str) -> Result<Service, String>,
        stack: &mut Vec<String>,
    ) -> Result<Service, (String, String)> {
        let s = services[name].clone();
        let Some(ext) = s.extends.clone() else {
            return Ok(s);
        };
        let (base_name, file) = match ext {
            ShortOrLong::Short(n) => (n, None),
            ShortOrLong::Long(l) => (l.service.0, l.file.map(|f| f.0)),
        };
        let base = match file {
            Some(f) => load(&f, &base_name).map_err(|e| (name.to_owned(), e))?,
            None => {
                if stack.len() >= super::MAX_EXTENDS_DEPTH {
                    return Err((
                        name.to_owned(),
                        format!(
                            "extends {base_name}: a chain of more than {} services extending one another; expected at most {}",
                            super::MAX_EXTENDS_DEPTH,
                            super::MAX_EXTENDS_DEPTH
                        ),
                    ));
                }
                if stack.contains(&base_name) || base_name == name {
                    return Err((name.to_owned(), format!("extends {base_name}: a cycle")));
                }
                if !services.contains_key(&base_name) {
                    return Err((
                        name.to_owned(),
                        format!("extends {base_name:?}: no such service in this file"),
                    ));
                }
                stack.push(name.to_owned());
                let b = one(&base_name, services, load, stack)?;
                stack.pop();
                b
            }
        };
        let mut merged = merge(base, s);
        merged.extends = None;
        Ok(merged)
    }
    let mut out = BTreeMap::new();
    for name in services.keys() {
        out.insert(name.clone(), one(name, services, load, &mut Vec::new())?);
    }
    Ok(out)
}
