//! dockhand's benchmarks, against its peers in the same run on the same engine.
//!
//! Run through `bench/run.sh` (it builds the release binaries and the image first):
//!
//! ```text
//! bench/run.sh [--quick] [--repeat N] [--only 1,2,3,4,5,6,7,8]
//! ```
//!
//! Every measurement is repeated; medians and ratios are reported because absolute times are
//! noisy. The output is a markdown table, with the machine it ran on.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const IMAGE: &str = "dockhand/busybox:local";
/// A light server: stops at once on SIGTERM.
const SLEEPER: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
/// The engine baseline's parallelism, and dockhand's `--parallel`.
const PARALLEL: usize = 8;

type Error = Box<dyn std::error::Error>;

struct Args {
    repeat: usize,
    quick: bool,
    only: Vec<u8>,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        repeat: 3,
        quick: false,
        only: vec![1, 2, 3, 4, 5, 6, 7, 8],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--repeat" => a.repeat = it.next().ok_or("--repeat needs a number")?.parse()?,
            "--only" => {
                a.only = it
                    .next()
                    .ok_or("--only needs a list like 1,2")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--inner-idle" => {
                let n = it.next().ok_or("--inner-idle needs a count")?.parse()?;
                return Err(Box::new(Inner(n)));
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if a.quick {
        a.repeat = 1;
    }
    Ok(a)
}

/// Marks the re-executed child that measures the idle controller in a process of its own.
#[derive(Debug)]
struct Inner(usize);
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inner")
    }
}
impl std::error::Error for Inner {}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if let Some(Inner(n)) = e.downcast_ref::<Inner>() {
                match idle::inner(*n) {
                    Ok(()) => return,
                    Err(e) => {
                        eprintln!("error: {e}");
                        std::process::exit(2);
                    }
                }
            }
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One row of the report.
struct Row {
    id: &'static str,
    scenario: String,
    dockhand: String,
    baseline: String,
    ratio: String,
    target: &'static str,
    met: Option<bool>,
}

impl Row {
    /// A timed scenario against a baseline timed in the same run; met at `at_most` × baseline.
    fn against(
        id: &'static str,
        scenario: String,
        ours: f64,
        baseline: &str,
        base: f64,
        target: &'static str,
        at_most: f64,
    ) -> Row {
        Row {
            id,
            scenario,
            dockhand: secs(ours),
            baseline: format!("{baseline} {}", secs(base)),
            ratio: format!("{:.2}×", ours / base),
            target,
            met: Some(ours / base <= at_most),
        }
    }
}

fn run(args: &Args) -> Result<(), Error> {
    let bin = dockhand_binary()?;
    let tag = format!("b{}", std::process::id());
    let mut rows = Vec::new();
    let sizes: &[usize] = if args.quick { &[20] } else { &[50, 200] };
    let noop_big = if args.quick { 100 } else { 500 };
    eprintln!("machine: {}", machine());
    if args.only.contains(&1) || args.only.contains(&2) {
        for &n in sizes {
            rows.extend(cold_converge(&bin, &tag, n, args.repeat)?);
        }
        if args.only.contains(&2) {
            rows.push(noop_only(&bin, &tag, noop_big)?);
        }
    }
    if args.only.contains(&3) {
        rows.push(drift_repair(&bin, &tag, if args.quick { 5 } else { 20 })?);
    }
    if args.only.contains(&4) {
        rows.push(edit_to_running(
            &bin,
            &tag,
            if args.quick { 3 } else { 10 },
        )?);
    }
    if args.only.contains(&5) {
        rows.extend(idle::outer(1000, if args.quick { 5 } else { 20 })?);
    }
    if args.only.contains(&6) {
        rows.extend(route::rows(args.quick, args.repeat)?);
    }
    if args.only.contains(&7) {
        rows.extend(compose_project(&bin, &tag, 20, args.repeat)?);
    }
    if args.only.contains(&8) {
        rows.extend(swarm::rows(&bin, &tag, if args.quick { 10 } else { 50 })?);
    }
    println!("\nMachine: {}\n", machine());
    println!("| # | scenario | dockhand | baseline | ratio | target | met |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.id, r.scenario, r.dockhand, r.baseline, r.ratio, r.target, met
        );
    }
    Ok(())
}

fn dockhand_binary() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find target/release")?;
    let bin = release.join("dockhand");
    if !bin.exists() {
        return Err(format!("{} is missing: run bench/run.sh", bin.display()).into());
    }
    Ok(bin)
}

fn output(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd.stderr(Stdio::piped()).output()?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn docker(args: &[&str]) -> Result<String, Error> {
    output(Command::new("docker").args(args))
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let engine = docker(&[
        "version",
        "--format",
        "{{.Server.Version}} (API {{.Server.APIVersion}})",
    ])
    .unwrap_or_default();
    let driver = docker(&["info", "--format", "{{.Driver}}"]).unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb: u64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{} GiB", kb / (1024 * 1024)))
        })
        .unwrap_or_default();
    format!(
        "{cores} cores, {mem}, Docker {}, storage driver {}, kernel {}",
        engine.trim(),
        driver.trim(),
        kernel.trim()
    )
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// Nearest-rank percentile.
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// Removes every container carrying `label` (not timed).
fn remove_labelled(label: &str) -> Result<(), Error> {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label={label}")])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    for chunk in ids.chunks(100) {
        let mut a = vec!["rm", "-f"];
        a.extend(chunk);
        docker(&a)?;
    }
    Ok(())
}

/// A scratch directory with a manifests directory and a state file, for one dockhand instance.
struct Scratch {
    dir: PathBuf,
    instance: String,
}

impl Scratch {
    fn new(tag: &str, name: &str) -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!("dockhand-bench-{tag}-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("manifests"))?;
        Ok(Scratch {
            dir,
            instance: format!("{tag}-{name}"),
        })
    }

    fn manifests(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    fn write_servers(&self, n: usize) -> Result<(), Error> {
        for i in 0..n {
            self.write(&format!("s{i:04}"), "")?;
        }
        Ok(())
    }

    /// Writes one server's manifest atomically (a rename), as an editor or git would.
    fn write(&self, name: &str, env: &str) -> Result<(), Error> {
        let cmd = serde_json::to_string(&SLEEPER)?;
        let text = format!(
            "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: {IMAGE}\n  pullPolicy: Never\n  command: {cmd}\n{env}"
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.manifests().join(format!("{name}.yaml")))?;
        Ok(())
    }

    fn command(&self, bin: &Path, verb: &str) -> Command {
        let mut c = Command::new(bin);
        c.arg(verb)
            .arg("--state")
            .arg(self.dir.join("state.db"))
            .arg("--instance")
            .arg(&self.instance)
            .env("DOCKHAND_LOG", "warn");
        if matches!(verb, "up" | "sync") {
            c.arg("--manifests").arg(self.manifests());
        }
        c
    }

    fn sync(&self, bin: &Path) -> Result<f64, Error> {
        let start = Instant::now();
        output(
            self.command(bin, "sync")
                .args(["--parallel", &PARALLEL.to_string(), "--timeout", "10m"])
                .stdout(Stdio::piped()),
        )?;
        Ok(start.elapsed().as_secs_f64())
    }

    fn clean(&self) -> Result<(), Error> {
        let label = format!("dockhand.instance={}", self.instance);
        remove_labelled(&label)?;
        // The instance's default network, once its containers are gone.
        let nets = docker(&["network", "ls", "-q", "--filter", &format!("label={label}")])?;
        for n in nets.split_whitespace() {
            // After mass removals this engine can keep a phantom endpoint on a network for a
            // while (or for good): retry, then leave it with a warning rather than lose the run.
            let mut tries = 0;
            while let Err(e) = docker(&["network", "rm", n]) {
                tries += 1;
                if tries == 5 {
                    eprintln!("  warning: network {n} stays: {e}");
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// N `docker run -d`, PARALLEL at a time: the engine's own limit as a CLI user reaches it.
/// With `network`, every container joins that user network, as dockhand's (and Compose's)
/// join the project's: the default bridge has no embedded DNS and costs the engine less.
fn engine_baseline(tag: &str, n: usize, network: Option<&str>) -> Result<f64, Error> {
    let label = format!("dockhand-bench={tag}");
    let network = network.map(str::to_owned);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (next, label, tag) = (next.clone(), label.clone(), tag.to_owned());
            let network = network.clone();
            std::thread::spawn(move || -> Result<(), String> {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return Ok(());
                    }
                    let name = format!("dhbench_{tag}_{i:04}");
                    let mut args = vec!["run", "-d", "--label", &label, "--name", &name];
                    if let Some(net) = &network {
                        args.extend(["--network", net.as_str()]);
                    }
                    args.push(IMAGE);
                    args.extend(SLEEPER);
                    docker(&args).map_err(|e| e.to_string())?;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "worker panicked")??;
    }
    let took = start.elapsed().as_secs_f64();
    remove_labelled(&label)?;
    Ok(took)
}

fn compose_installed() -> bool {
    Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A compose file of `n` light services, each with a few environment variables, as the
/// engine, Compose and dockhand's compose source all run it.
fn compose_file(tag: &str, n: usize) -> Result<String, Error> {
    let cmd = serde_json::to_string(&SLEEPER)?;
    let mut file = String::from("version: \"2.4\"\nservices:\n");
    for i in 0..n {
        file.push_str(&format!(
            "  s{i:04}:\n    image: {IMAGE}\n    command: {cmd}\n    labels: {{dockhand-bench: {tag}}}\n    environment: {{ROLE: worker, INDEX: \"{i}\"}}\n"
        ));
    }
    Ok(file)
}

/// `docker-compose up -d` on the equivalent compose file; `None` when it did not finish within
/// `limit` (docker-compose 1.29 was seen to hang for good at 200 services on this engine).
fn compose_baseline(tag: &str, n: usize, limit: Duration) -> Result<Option<f64>, Error> {
    let dir = std::env::temp_dir().join(format!("dockhand-bench-{tag}-compose"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("docker-compose.yml");
    std::fs::write(&path, compose_file(tag, n)?)?;
    let project = format!("dhbench{tag}");
    let compose = |args: &[&str]| {
        output(
            Command::new("docker-compose")
                .args(["-p", &project, "-f"])
                .arg(&path)
                .args(args)
                .stdout(Stdio::piped()),
        )
    };
    let start = Instant::now();
    let mut up = Command::new("docker-compose")
        .args(["-p", &project, "-f"])
        .arg(&path)
        .args(["up", "-d"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let took = loop {
        if let Some(status) = up.try_wait()? {
            if !status.success() {
                return Err(format!("docker-compose up failed: {status}").into());
            }
            break Some(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > limit {
            let _ = up.kill();
            let _ = up.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if compose(&["down", "-t", "0"]).is_err() || took.is_none() {
        // What compose left behind, removed by its own labels.
        remove_labelled(&format!("com.docker.compose.project={project}"))?;
        let _ = docker(&["network", "rm", &format!("{project}_default")]);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(took)
}

/// Scenario 8: services on the three-node test swarm (`scripts/swarm-lab.sh`: three dockerd
/// processes in network namespaces of their own; the machine's engine is not touched), dockhand
/// against `docker stack deploy` of the same services, each timed until every task runs.
mod swarm {
    use super::*;

    const LAB: &str = "scripts/swarm-lab.sh";

    fn lab(verb: &str) -> Result<String, Error> {
        output(Command::new("sh").arg(LAB).arg(verb).stdout(Stdio::piped()))
    }

    /// The manager's socket, as `swarm-lab.sh env` prints it.
    fn manager() -> Result<String, Error> {
        let env = lab("env")?;
        Ok(env
            .trim()
            .strip_prefix("DOCKER_HOST=")
            .ok_or("swarm-lab.sh env said no DOCKER_HOST")?
            .to_owned())
    }

    fn on(host: &str, args: &[&str]) -> Result<String, Error> {
        output(Command::new("docker").arg("-H").arg(host).args(args))
    }

    /// Waits until `n` services carrying `label` each run their one task.
    fn wait_running(host: &str, label: &str, n: usize) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let out = on(
                host,
                &[
                    "service",
                    "ls",
                    "--filter",
                    &format!("label={label}"),
                    "--format",
                    "{{.Replicas}}",
                ],
            )?;
            let running = out.lines().filter(|r| r.starts_with("1/1")).count();
            if running >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{running} of {n} services running after 10 minutes").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Removes the services carrying `label` and waits until their containers are gone.
    fn remove_services(host: &str, label: &str) -> Result<(), Error> {
        let ids = on(
            host,
            &["service", "ls", "-q", "--filter", &format!("label={label}")],
        )?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        for chunk in ids.chunks(50) {
            let mut a = vec!["service", "rm"];
            a.extend(chunk);
            on(host, &a)?;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let tasks = on(host, &["ps", "-aq"])?;
            if tasks.trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    pub fn rows(bin: &Path, tag: &str, n: usize) -> Result<Vec<Row>, Error> {
        eprintln!("swarm: {n} services on a three-node swarm (starting it)");
        lab("up")?;
        let result = measure(bin, tag, n);
        if let Err(e) = lab("down") {
            eprintln!("warning: swarm-lab.sh down: {e}");
        }
        result
    }

    fn measure(bin: &Path, tag: &str, n: usize) -> Result<Vec<Row>, Error> {
        let host = manager()?;
        // `docker stack deploy` of the same services (a version 3 file, as stacks need).
        let dir = std::env::temp_dir().join(format!("dockhand-bench-{tag}-stack"));
        std::fs::create_dir_all(&dir)?;
        let cmd = serde_json::to_string(&SLEEPER)?;
        let mut file = String::from("version: \"3.8\"\nservices:\n");
        for i in 0..n {
            file.push_str(&format!(
                "  s{i:04}:\n    image: {IMAGE}\n    command: {cmd}\n    deploy: {{labels: {{dockhand-bench: {tag}}}}}\n"
            ));
        }
        let path = dir.join("stack.yml");
        std::fs::write(&path, file)?;
        let label = format!("dockhand-bench={tag}");
        let start = Instant::now();
        // No registry here: the CLI's digest lookup would wait on it once per service (1001 s
        // for 50 services, measured), which says nothing about the swarm.
        let file = path.to_string_lossy();
        let deploy = [
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            &file,
            "dhb",
        ];
        on(&host, &deploy)?;
        wait_running(&host, &label, n)?;
        let stack = start.elapsed().as_secs_f64();
        on(&host, &["stack", "rm", "dhb"])?;
        remove_services(&host, &label)?;
        let _ = std::fs::remove_dir_all(&dir);
        // dockhand: the same services as Server manifests, `sync` until every task runs.
        let s = Scratch::new(tag, &format!("swarm{n}"))?;
        s.write_servers(n)?;
        let start = Instant::now();
        output(
            s.command(bin, "sync")
                .env("DOCKER_HOST", &host)
                .env("DOCKHAND_ENGINE", "swarm")
                .args(["--parallel", &PARALLEL.to_string(), "--timeout", "10m"])
                .stdout(Stdio::piped()),
        )?;
        let ours = start.elapsed().as_secs_f64();
        remove_services(&host, &format!("dockhand.instance={}", s.instance))?;
        let _ = std::fs::remove_dir_all(&s.dir);
        Ok(vec![Row::against(
            "8",
            format!("{n} services on the three-node test swarm, until every task runs"),
            ours,
            "docker stack deploy",
            stack,
            "≤ 1.0× stack deploy",
            1.0,
        )])
    }
}

/// Scenario 7: one compose project converged by dockhand's compose source (the file dropped in
/// the manifests directory as `compose.yaml`) against `docker-compose up -d` of the same file.
fn compose_project(bin: &Path, tag: &str, n: usize, repeat: usize) -> Result<Vec<Row>, Error> {
    if !compose_installed() {
        eprintln!("compose project: docker-compose is not installed; skipped");
        return Ok(Vec::new());
    }
    let (mut compose, mut ours) = (Vec::new(), Vec::new());
    for r in 0..repeat {
        eprintln!("compose project, {n} services, run {}/{repeat}", r + 1);
        match compose_baseline(tag, n, Duration::from_secs(300))? {
            Some(c) => compose.push(c),
            None => return Err("docker-compose up did not finish in 5 minutes".into()),
        }
        let s = Scratch::new(tag, &format!("project{n}"))?;
        std::fs::write(s.manifests().join("compose.yaml"), compose_file(tag, n)?)?;
        ours.push(s.sync(bin)?);
        s.clean()?;
    }
    Ok(vec![Row::against(
        "7",
        format!("a compose project of {n} services, from the compose source (median of {repeat})"),
        median(&ours),
        "docker-compose up -d",
        median(&compose),
        "≤ 0.7× Compose",
        0.7,
    )])
}

/// Scenario 1 (cold converge against the engine and Compose) and 2 (no-op sync on the result).
fn cold_converge(bin: &Path, tag: &str, n: usize, repeat: usize) -> Result<Vec<Row>, Error> {
    let (mut engine, mut compose, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let mut engine_net = Vec::new();
    let has_compose = compose_installed();
    let mut compose_hung = false;
    let mut noop = Vec::new();
    let net = format!("dhbench_{tag}_net");
    docker(&[
        "network",
        "create",
        "--label",
        &format!("dockhand-bench={tag}"),
        &net,
    ])?;
    for r in 0..repeat {
        eprintln!("cold converge, {n} servers, run {}/{repeat}", r + 1);
        let e = engine_baseline(tag, n, None)?;
        engine.push(e);
        engine_net.push(engine_baseline(tag, n, Some(&net))?);
        if has_compose && !compose_hung {
            let limit = Duration::from_secs_f64((e * 5.0).max(60.0));
            match compose_baseline(tag, n, limit)? {
                Some(c) => compose.push(c),
                None => {
                    eprintln!("  docker-compose did not finish within {limit:?}; not run again");
                    compose_hung = true;
                }
            }
        }
        let s = Scratch::new(tag, &format!("cold{n}"))?;
        s.write_servers(n)?;
        ours.push(s.sync(bin)?);
        if r + 1 == repeat {
            noop = (0..10).map(|_| s.sync(bin)).collect::<Result<_, _>>()?;
        }
        s.clean()?;
    }
    let _ = docker(&["network", "rm", &net]);
    let (e, d) = (median(&engine), median(&ours));
    let mut rows = vec![
        Row::against(
            "1",
            format!("cold converge, {n} servers (median of {repeat})"),
            d,
            "engine",
            e,
            "≤ 0.8× engine",
            0.8,
        ),
        Row {
            target: "- (context: the same network cost)",
            met: None,
            ..Row::against(
                "1",
                format!("… vs the engine with each container on a user network, {n} servers"),
                d,
                "engine",
                median(&engine_net),
                "",
                0.0,
            )
        },
    ];
    if compose_hung {
        rows.push(Row {
            id: "1",
            scenario: format!("… vs docker-compose up -d, {n} services"),
            dockhand: secs(d),
            baseline: "compose hung (did not finish in 5× the engine's time)".into(),
            ratio: "-".into(),
            target: "≥ 1.5× faster than Compose",
            met: Some(true),
        });
    } else if has_compose {
        rows.push(Row::against(
            "1",
            format!("… vs docker-compose up -d, {n} services"),
            d,
            "compose",
            median(&compose),
            "≥ 1.5× faster than Compose",
            1.0 / 1.5,
        ));
    }
    rows.push(noop_row(n, &noop));
    Ok(rows)
}

/// The targets: 30 ms at 50 objects, 100 ms at 500; other sizes are reported only.
fn noop_row(n: usize, runs: &[f64]) -> Row {
    let m = median(runs);
    let (target, limit) = match n {
        50 => ("≤ 30 ms", Some(0.03)),
        500 => ("≤ 100 ms", Some(0.1)),
        _ => ("-", None),
    };
    Row {
        id: "2",
        scenario: format!(
            "no-op `dockhand sync`, {n} objects, process start included (median of {})",
            runs.len()
        ),
        dockhand: secs(m),
        baseline: "-".into(),
        ratio: "-".into(),
        target,
        met: limit.map(|l| m <= l),
    }
}

/// Scenario 2 at the larger size: converge once, then time no-op syncs.
fn noop_only(bin: &Path, tag: &str, n: usize) -> Result<Row, Error> {
    eprintln!("no-op sync, {n} servers (converging them first)");
    let s = Scratch::new(tag, &format!("noop{n}"))?;
    s.write_servers(n)?;
    s.sync(bin)?;
    let runs: Vec<f64> = (0..10).map(|_| s.sync(bin)).collect::<Result<_, _>>()?;
    s.clean()?;
    Ok(noop_row(n, &runs))
}

/// `docker events` for an instance, as (engine time, action, container name).
struct Events {
    child: Child,
    rx: mpsc::Receiver<(f64, String, String)>,
}

impl Events {
    fn follow(instance: &str) -> Result<Self, Error> {
        Self::follow_label(&format!("dockhand.instance={instance}"))
    }

    fn follow_label(label: &str) -> Result<Self, Error> {
        let mut child = Command::new("docker")
            .args([
                "events",
                "--filter",
                &format!("label={label}"),
                "--filter",
                "type=container",
                "--format",
                "{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut p = line.splitn(3, ' ');
                let (Some(t), Some(a), Some(n)) = (p.next(), p.next(), p.next()) else {
                    continue;
                };
                let Ok(t) = t.parse::<f64>() else { continue };
                if tx.send((t / 1e9, a.to_owned(), n.to_owned())).is_err() {
                    return;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Ok(Events { child, rx })
    }

    /// Collects events until `action` on `name`; returns the first time of each action there.
    fn until(
        &self,
        name: &str,
        action: &str,
        within: Duration,
    ) -> Result<HashMap<String, f64>, Error> {
        let deadline = Instant::now() + within;
        let mut seen = HashMap::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (t, a, n) = self
                .rx
                .recv_timeout(left)
                .map_err(|_| format!("no {action} event for {name}"))?;
            if n == name {
                seen.entry(a.clone()).or_insert(t);
                if a == action {
                    return Ok(seen);
                }
            }
        }
    }

    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A `dockhand up` for a scratch instance, stopped when dropped.
struct Up(Child);

impl Up {
    fn start(bin: &Path, s: &Scratch) -> Result<Self, Error> {
        let child = s
            .command(bin, "up")
            .args(["--resync", "1h", "--api", "none"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Up(child))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: sends SIGTERM to our own child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let _ = self.0.wait();
    }
}

fn wait_running(names: &[String], within: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + within;
    loop {
        let out = docker(&["ps", "--format", "{{.Names}}"])?;
        let running: Vec<&str> = out.lines().collect();
        if names.iter().all(|n| running.contains(&n.as_str())) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("containers did not start".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Scenario 3: `docker kill` → running again, under `up` with resync off (events alone).
/// Each kill hits a different server, so crash-loop backoff never applies.
fn drift_repair(bin: &Path, tag: &str, kills: usize) -> Result<Row, Error> {
    eprintln!("drift repair, {kills} kills");
    let s = Scratch::new(tag, "drift")?;
    s.write_servers(kills)?;
    s.sync(bin)?;
    let names: Vec<String> = (0..kills)
        .map(|i| format!("dh_{}_server_s{i:04}", s.instance))
        .collect();
    let up = Up::start(bin, &s)?;
    let events = Events::follow(&s.instance)?;
    std::thread::sleep(Duration::from_secs(1));
    let repair = kill_each(&names, &events)?;
    drop(events);
    drop(up);
    s.clean()?;
    // The engine's own: `--restart always` containers, their processes killed the same way.
    let label = format!("dockhand-bench={tag}-restart");
    let names: Vec<String> = (0..kills)
        .map(|i| format!("dhbench_{tag}_restart_{i:04}"))
        .collect();
    for name in &names {
        let mut args = vec![
            "run",
            "-d",
            "--restart",
            "always",
            "--label",
            &label,
            "--name",
            name,
            IMAGE,
        ];
        args.extend(SLEEPER);
        docker(&args)?;
    }
    let events = Events::follow_label(&label)?;
    let engine = kill_each(&names, &events);
    drop(events);
    remove_labelled(&label)?;
    let engine = engine?;
    let (p50, p99) = (median(&repair), percentile(&repair, 0.99));
    let (e50, e99) = (median(&engine), percentile(&engine, 0.99));
    Ok(Row {
        id: "3",
        scenario: format!(
            "drift repair under `up`: process killed → container started again, {kills} kills"
        ),
        dockhand: format!("p50 {}, p99 {}", secs(p50), secs(p99)),
        baseline: format!(
            "engine `--restart always`: p50 {}, p99 {}",
            secs(e50),
            secs(e99)
        ),
        ratio: format!("{:.2}× (p50)", p50 / e50),
        target: "p50 ≤ 1.0× engine",
        met: Some(p50 <= e50),
    })
}

/// Kills each container's main process (`kill -9`, as a crash would) and measures from its
/// `die` event to its next `start`.
fn kill_each(names: &[String], events: &Events) -> Result<Vec<f64>, Error> {
    let mut out = Vec::new();
    for name in names {
        events.drain();
        let issued = wall();
        let pid = docker(&["inspect", "-f", "{{.State.Pid}}", name])?;
        output(Command::new("kill").args(["-9", pid.trim()]))?;
        let seen = events.until(name, "start", Duration::from_secs(30))?;
        let start = seen.get("start").copied().unwrap_or(f64::NAN);
        let died = seen.get("die").copied().unwrap_or(issued);
        out.push(start - died);
        eprintln!(
            "  {name}: back {:.0} ms after it died",
            (start - died) * 1000.0
        );
    }
    Ok(out)
}

/// Scenario 4: a manifest edit → the new container running, under `up`.
fn edit_to_running(bin: &Path, tag: &str, edits: usize) -> Result<Row, Error> {
    eprintln!("edit → running, {edits} edits");
    let s = Scratch::new(tag, "edit")?;
    s.write("edited", "")?;
    s.sync(bin)?;
    let name = format!("dh_{}_server_edited", s.instance);
    let up = Up::start(bin, &s)?;
    wait_running(std::slice::from_ref(&name), Duration::from_secs(30))?;
    let events = Events::follow(&s.instance)?;
    std::thread::sleep(Duration::from_secs(1));
    let (mut total, mut engine) = (Vec::new(), Vec::new());
    for i in 0..edits {
        events.drain();
        let written = wall();
        s.write("edited", &format!("  env: {{EDIT: \"{i}\"}}\n"))?;
        let seen = events.until(&name, "start", Duration::from_secs(30))?;
        let at = |a: &str| seen.get(a).copied();
        let start = at("start").ok_or("no start")?;
        // The engine's share: stopping and removing the old container, creating and starting
        // the new one.
        let removal = match (at("kill"), at("destroy")) {
            (Some(k), Some(d)) => d - k,
            _ => 0.0,
        };
        let create_start = at("create").map_or(0.0, |c| start - c);
        total.push(start - written);
        engine.push(removal + create_start);
        eprintln!(
            "  edit {i}: running {:.0} ms after the write (engine {:.0} ms)",
            (start - written) * 1000.0,
            (removal + create_start) * 1000.0
        );
    }
    drop(events);
    drop(up);
    s.clean()?;
    let own: Vec<f64> = total.iter().zip(&engine).map(|(t, e)| t - e).collect();
    let m = median(&own);
    Ok(Row {
        id: "4",
        scenario: format!("manifest edit → new container running, under `up` (median of {edits})"),
        dockhand: format!(
            "{} total, of which dockhand {}",
            secs(median(&total)),
            secs(m)
        ),
        baseline: format!("engine stop+remove+create+start {}", secs(median(&engine))),
        ratio: "-".into(),
        target: "dockhand ≤ 0.5 s",
        met: Some(m <= 0.5),
    })
}

/// Scenario 5: the controller's memory and idle CPU with many objects, on the in-memory engine.
mod idle {
    use super::*;
    use dockhand::api::{self, Api};
    use dockhand::controller::{Controller, Signals};
    use dockhand::engine::fake::FakeEngine;
    use dockhand::engine::Engine;
    use dockhand::lifecycle::BackoffPolicy;
    use dockhand::reconcile::{Options, Reconciler};
    use dockhand::source::Sources;
    use dockhand::store::Store;

    /// Runs this program again to measure a controller alone in its process.
    pub fn outer(n: usize, idle_secs: u64) -> Result<Vec<Row>, Error> {
        eprintln!("controller with {n} objects on the in-memory engine, idle {idle_secs} s");
        let exe = std::env::current_exe()?;
        let out = output(
            Command::new(exe)
                .args(["--inner-idle", &n.to_string()])
                .env("BENCH_IDLE_SECS", idle_secs.to_string())
                .stdout(Stdio::piped()),
        )?;
        let v: serde_json::Value = serde_json::from_str(out.trim())?;
        let rss = v["rss_mb"].as_f64().unwrap_or(f64::NAN);
        let peak = v["peak_mb"].as_f64().unwrap_or(f64::NAN);
        let anon = v["anon_mb"].as_f64().unwrap_or(f64::NAN);
        let file = v["file_mb"].as_f64().unwrap_or(f64::NAN);
        let cpu = v["idle_cpu_percent"].as_f64().unwrap_or(f64::NAN);
        let converge = v["converge_s"].as_f64().unwrap_or(f64::NAN);
        let pass = v["noop_pass_ms"].as_f64().unwrap_or(f64::NAN);
        let idle_passes = v["idle_passes"].as_u64().unwrap_or(0);
        Ok(vec![
            Row {
                id: "5",
                scenario: format!("controller RSS with {n} objects (in-memory engine, API on)"),
                dockhand: format!(
                    "{rss:.1} MB (heap and stacks {anon:.1} MB, binary and libraries {file:.1} MB; peak {peak:.1} MB)"
                ),
                baseline: "-".into(),
                ratio: "-".into(),
                target: "≤ 20 MB",
                met: Some(rss <= 20.0),
            },
            Row {
                id: "5",
                scenario: format!("idle CPU with {n} objects, over {idle_secs} s"),
                dockhand: format!("{cpu:.2} % of one core ({idle_passes} passes)"),
                baseline: "-".into(),
                ratio: "-".into(),
                target: "≈ 0",
                met: Some(cpu < 0.5),
            },
            Row {
                id: "5",
                scenario: format!("… converging those {n} objects; one no-op pass over them"),
                dockhand: format!("{} ; {pass:.1} ms", secs(converge)),
                baseline: "-".into(),
                ratio: "-".into(),
                target: "-",
                met: None,
            },
        ])
    }

    fn status_kb(field: &str) -> f64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .unwrap_or(f64::NAN)
    }

    fn cpu_seconds() -> f64 {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct we own.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    }

    /// The measured child: a controller as `dockhand up` wires it, on FakeEngine.
    pub fn inner(n: usize) -> Result<(), Error> {
        dockhand::cli::tune_process();
        let idle_secs: u64 = std::env::var("BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20);
        if let Ok(filter) = std::env::var("DOCKHAND_LOG") {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .init();
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let dir =
                std::env::temp_dir().join(format!("dockhand-bench-idle-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let s = Scratch {
                dir: dir.clone(),
                instance: "idle".into(),
            };
            std::fs::create_dir_all(s.manifests())?;
            s.write_servers(n)?;
            let state = dir.join("state.db");
            let store = Store::open(&state).await?;
            let runtime = FakeEngine::new();
            let sources = Sources {
                dir: Some(s.manifests()),
                store: store.clone(),
                instance: s.instance.clone(),
                allow_empty: false,
                compose: Default::default(),
                git: Vec::new(),
            };
            let signals = Signals::default();
            let options = Options {
                instance: s.instance.clone(),
                allow_empty: false,
                parallel: PARALLEL,
                backoff: BackoffPolicy::default(),
                host_policy: Default::default(),
                manifests: Some(s.manifests()),
                prune_delay: std::time::Duration::ZERO,
                take_over: false,
                subnet_pool: None,
            };
            let reconciler = Arc::new(Reconciler::new(runtime.clone(), store.clone(), options));
            let cell = Arc::new(std::sync::OnceLock::new());
            let _ = cell.set(reconciler.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let api_state = Arc::new(Api {
                store: store.clone(),
                sources: sources.clone(),
                instance: s.instance.clone(),
                signals: signals.clone(),
                reconciler: cell,
                token: None,
                git_hook: None,
            });
            tokio::spawn(api::serve(listener, api_state, std::future::pending()));
            let started = Instant::now();
            let controller = Controller {
                reconciler: reconciler.clone(),
                sources: sources.clone(),
                state: state.clone(),
                instance: s.instance.clone(),
                resync: Duration::from_secs(30),
                signals: signals.clone(),
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(controller.run(async {
                let _ = stopped.await;
            }));
            loop {
                let running = runtime
                    .list("idle")
                    .await?
                    .iter()
                    .filter(|c| c.state == dockhand::engine::State::Running)
                    .count();
                if running == n && signals.is_ready() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let converge = started.elapsed().as_secs_f64();
            // Let the confirming passes finish, then measure a quiet controller.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let passes = || {
                let text = signals.metrics.render(&[], &[], &[]);
                text.lines()
                    .find_map(|l| l.strip_prefix("dockhand_reconcile_pass_duration_seconds_count "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (cpu0, passes0) = (cpu_seconds(), passes());
            tokio::time::sleep(Duration::from_secs(idle_secs)).await;
            let cpu = (cpu_seconds() - cpu0) / idle_secs as f64 * 100.0;
            let idle_passes = passes() - passes0;
            let (rss, anon, file) = (
                status_kb("VmRSS:") / 1024.0,
                status_kb("RssAnon:") / 1024.0,
                status_kb("RssFile:") / 1024.0,
            );
            // One pass timed alone, after the idle controller was measured.
            let snapshot = sources.load().await?;
            let t = Instant::now();
            reconciler.pass(&snapshot).await?;
            let noop_ms = t.elapsed().as_secs_f64() * 1000.0;
            let v = serde_json::json!({
                "rss_mb": rss,
                "peak_mb": status_kb("VmHWM:") / 1024.0,
                "anon_mb": anon,
                "file_mb": file,
                "idle_cpu_percent": cpu,
                "converge_s": converge,
                "noop_pass_ms": noop_ms,
                "idle_passes": idle_passes,
            });
            println!("{v}");
            let _ = stop.send(());
            let _ = task.await;
            let _ = std::fs::remove_dir_all(&dir);
            Ok::<(), Error>(())
        })
    }
}

/// Scenario 6: a Route's data plane against a direct connection to the same backend: TCP bulk
/// throughput, TCP connections per second, UDP round trips per second with 100 clients. The
/// backend is a container (the issue's baseline: direct to the container), its sinks running in
/// this process on a thread that joined the container's network namespace, so the sink costs the
/// same as on loopback; then, for context, the same sinks on loopback, where the ratio is the
/// proxy's own cost alone.
mod route {
    use super::{median, Error, Row};
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream, UdpSocket};

    fn route(
        protocol: &str,
        listen: SocketAddr,
        port: u16,
    ) -> Result<(String, dockhand::manifest::network::RouteSpec), Error> {
        let text = format!(
            "apiVersion: dockhand/v1\nkind: Route\nmetadata: {{name: bench}}\nspec: {{protocol: {protocol}, listen: '{listen}', to: {{server: sink, port: {port}}}}}\n"
        );
        let objects = dockhand::manifest::parse_str(&text, "bench.yaml", None)
            .map_err(|e| format!("{e:?}"))?;
        match objects.into_iter().next().map(|o| o.spec) {
            Some(dockhand::manifest::Spec::Route(r)) => Ok(("bench".into(), r)),
            _ => Err("not a route".into()),
        }
    }

    fn free_port() -> Result<u16, Error> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }

    /// Sends `bytes` and waits for the sink to have read them all.
    async fn bulk(to: SocketAddr, bytes: usize) -> Result<f64, Error> {
        let mut c = TcpStream::connect(to).await?;
        let chunk = vec![7u8; 1 << 20];
        let started = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            c.write_all(&chunk[..n]).await?;
            left -= n;
        }
        c.shutdown().await?;
        let mut ack = Vec::new();
        c.read_to_end(&mut ack).await?;
        Ok(bytes as f64 / started.elapsed().as_secs_f64())
    }

    /// `total` connections, 16 at a time: connect, one byte each way, close.
    async fn connections(to: SocketAddr, total: usize) -> Result<f64, Error> {
        let started = Instant::now();
        let per = total / 16;
        let workers: Vec<_> = (0..16)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..per {
                        let mut c = TcpStream::connect(to).await?;
                        c.write_all(b"x").await?;
                        let mut b = [0u8; 1];
                        c.read_exact(&mut b).await?;
                    }
                    Ok::<_, std::io::Error>(())
                })
            })
            .collect();
        for w in workers {
            w.await??;
        }
        Ok((per * 16) as f64 / started.elapsed().as_secs_f64())
    }

    /// 100 clients, each sending a datagram and waiting for its echo, for `secs`.
    async fn udp(to: SocketAddr, secs: f64) -> Result<f64, Error> {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let started = Instant::now();
        let clients: Vec<_> = (0..100)
            .map(|_| {
                tokio::spawn(async move {
                    let s = UdpSocket::bind("0.0.0.0:0").await?;
                    s.connect(to).await?;
                    let mut n = 0u64;
                    let mut buf = [0u8; 64];
                    while Instant::now() < until {
                        s.send(b"ping").await?;
                        if tokio::time::timeout(Duration::from_millis(200), s.recv(&mut buf))
                            .await
                            .is_ok()
                        {
                            n += 1;
                        }
                    }
                    Ok::<_, std::io::Error>(n)
                })
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.await??;
        }
        Ok(total as f64 / started.elapsed().as_secs_f64())
    }

    /// The backends: a TCP sink that reads everything (an `x` alone is the connection test's:
    /// answered with one byte) and a UDP echo, on `ip`, port 0.
    async fn sinks(ip: Ipv4Addr) -> Result<(u16, u16), Error> {
        let tcp = TcpListener::bind((ip, 0)).await?;
        let tcp_port = tcp.local_addr()?.port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    // The connection test's `x` is read into a small buffer: a big one per
                    // connection would cost the sink more than the connection does.
                    let mut first = [0u8; 1024];
                    match s.read(&mut first).await {
                        Ok(1) if first[0] == b'x' => {
                            // Answered, and closed first, so the TIME_WAITs are the sink's,
                            // not the client's (a client that closes first runs out of ports
                            // to a container, as loopback reuses them).
                            let _ = s.write_all(b"y").await;
                            return;
                        }
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let mut buf = vec![0u8; 1 << 20];
                    while let Ok(1..) = s.read(&mut buf).await {}
                });
            }
        });
        let udp = UdpSocket::bind((ip, 0)).await?;
        let udp_port = udp.local_addr()?.port();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let _ = udp.send_to(&buf[..n], from).await;
            }
        });
        Ok((tcp_port, udp_port))
    }

    /// A container on the default bridge whose network namespace the sinks run in (on a thread
    /// of their own that joined it), so "direct" is what the issue means: straight to the
    /// container. Removed when dropped.
    struct Container {
        name: String,
        ip: Ipv4Addr,
        ports: (u16, u16),
    }

    impl Container {
        fn start() -> Result<Container, Error> {
            let name = format!("dh-bench-sink-{}", std::process::id());
            let _ = super::docker(&["rm", "-f", &name]);
            super::docker(&[
                "run",
                "-d",
                "--name",
                &name,
                "--label",
                "dockhand.bench=sink",
                super::IMAGE,
                "sleep",
                "3600",
            ])?;
            let mut c = Container {
                name: name.clone(),
                ip: Ipv4Addr::UNSPECIFIED,
                ports: (0, 0),
            };
            let out = super::docker(&[
                "inspect",
                "-f",
                "{{.State.Pid}} {{.NetworkSettings.IPAddress}}",
                &name,
            ])?;
            let mut it = out.split_whitespace();
            let pid: u32 = it.next().ok_or("no pid")?.parse()?;
            c.ip = it.next().ok_or("no address")?.parse()?;
            let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a namespace descriptor we opened; it moves this thread only.
                if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let _ = tx.send(Err(std::io::Error::last_os_error().to_string()));
                    return;
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let r = sinks(Ipv4Addr::UNSPECIFIED).await;
                    let _ = tx.send(r.map_err(|e| e.to_string()));
                    std::future::pending::<()>().await
                });
            });
            c.ports = rx.recv()??;
            Ok(c)
        }
    }

    impl Drop for Container {
        fn drop(&mut self) {
            let _ = super::docker(&["rm", "-f", &self.name]);
        }
    }

    /// Proxied and direct, alternating, `repeat` times: throughput, connections/s, UDP round
    /// trips/s, each as (proxied, direct) samples.
    async fn measure(
        proxy: &dockhand::proxy::Proxy,
        backend: Ipv4Addr,
        (tcp_port, udp_port): (u16, u16),
        quick: bool,
        repeat: usize,
    ) -> Result<[(Vec<f64>, Vec<f64>); 3], Error> {
        let tcp_listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let udp_listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let routes = vec![route("tcp", tcp_listen, tcp_port)?, {
            let (_, r) = route("udp", udp_listen, udp_port)?;
            ("bench-udp".to_owned(), r)
        }];
        let backends = HashMap::from([(
            "sink".to_owned(),
            vec![dockhand::proxy::Backend::from(backend)],
        )]);
        proxy.sync(&routes, &backends).await;
        let direct_tcp = SocketAddr::from((backend, tcp_port));
        let direct_udp = SocketAddr::from((backend, udp_port));
        let bytes = if quick { 256 << 20 } else { 1 << 30 };
        let conns = if quick { 1_600 } else { 8_000 };
        let secs = if quick { 1.0 } else { 3.0 };
        let mut m: [(Vec<f64>, Vec<f64>); 3] = Default::default();
        for _ in 0..repeat.max(1) {
            m[0].1.push(bulk(direct_tcp, bytes).await?);
            m[0].0.push(bulk(tcp_listen, bytes).await?);
            m[1].1.push(connections(direct_tcp, conns).await?);
            m[1].0.push(connections(tcp_listen, conns).await?);
            m[2].1.push(udp(direct_udp, secs).await?);
            m[2].0.push(udp(udp_listen, secs).await?);
        }
        proxy.sync(&[], &HashMap::new()).await;
        Ok(m)
    }

    pub fn rows(quick: bool, repeat: usize) -> Result<Vec<Row>, Error> {
        eprintln!("route: TCP throughput, connections/s and UDP round trips, proxied and direct");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async {
            let proxy = dockhand::proxy::Proxy::new();
            let container = Container::start()?;
            let to_container =
                measure(&proxy, container.ip, container.ports, quick, repeat).await?;
            drop(container);
            let local = sinks(Ipv4Addr::LOCALHOST).await?;
            let to_loopback = measure(&proxy, Ipv4Addr::LOCALHOST, local, quick, repeat).await?;
            let n = repeat.max(1);
            let row = |scenario: String,
                       (p, d): &(Vec<f64>, Vec<f64>),
                       unit: &str,
                       scale: f64,
                       target: Option<(f64, &'static str)>| {
                let (p, d) = (median(p), median(d));
                Row {
                    id: "6",
                    scenario: format!("{scenario} (median of {n})"),
                    dockhand: format!("{:.2} {unit}", p / scale),
                    baseline: format!("direct {:.2} {unit}", d / scale),
                    ratio: format!("{:.2}×", p / d),
                    target: target.map_or("context", |t| t.1),
                    met: target.map(|t| p / d >= t.0),
                }
            };
            let gib = (1u64 << 30) as f64;
            let mut rows = Vec::new();
            for (to, m, targets) in [
                ("a container", &to_container, true),
                (
                    "a sink on loopback (the proxy's own cost)",
                    &to_loopback,
                    false,
                ),
            ] {
                let t = |at: f64, label: &'static str| targets.then_some((at, label));
                rows.push(row(
                    format!("Route to {to}, TCP bulk throughput"),
                    &m[0],
                    "GiB/s",
                    gib,
                    t(0.9, "≥ 0.9× direct"),
                ));
                rows.push(row(
                    format!("Route to {to}, TCP connections/s (16 at a time)"),
                    &m[1],
                    "k/s",
                    1000.0,
                    t(0.8, "≥ 0.8× direct"),
                ));
                rows.push(row(
                    format!("Route to {to}, UDP round trips/s, 100 clients"),
                    &m[2],
                    "k/s",
                    1000.0,
                    t(0.8, "≥ 0.8× direct"),
                ));
            }
            Ok(rows)
        })
    }
}
