//! The translation, end to end from text, without an engine.

use super::*;
use crate::manifest::server::{RestartPolicy, VolumeType};
use crate::manifest::{Kind, Spec};

const SHOP: &str = r#"
name: shop
x-common: &common
  restart: unless-stopped
services:
  web:
    <<: *common
    image: dockhand/busybox:local
    command: httpd -f -p 8080 -h /www
    ports: ["127.0.0.1:${WEB_PORT:-8081}:8080", {target: 9000, published: "9001", protocol: udp}]
    volumes:
      - ./www:/www:ro
      - type: volume
        source: cache
        target: /cache
    networks: [front]
    depends_on:
      api: {condition: service_healthy, restart: true}
    labels: {tier: web}
  api:
    build: {context: ./api, args: [VERSION=1.2]}
    environment:
      DB_HOST: db
      GREETING: ${GREETING}
    env_file: [api.env, {path: missing.env, required: false}]
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/ || exit 1"]
      interval: 1m30s
      retries: 5
    networks:
      front:
      back: {aliases: [backend]}
    deploy:
      replicas: 2
      resources: {limits: {cpus: "0.5", memory: 64M}}
      update_config: {order: start-first}
    x-dockhand: {maxRestarts: 4}
  db:
    image: dockhand/postgres:15
    secrets: [db_password]
    volumes: [db_data:/var/lib/postgresql/data, /scratch]
    networks: [back]
    healthcheck: {test: pg_isready, timeout: 5s}
    x-dockhand: {onUnhealthy: None}
  job:
    image: dockhand/busybox:local
    profiles: [tools]
    command: ["true"]
volumes:
  cache:
  db_data:
networks:
  front:
  back: {ipam: {config: [{subnet: 10.77.0.0/24}]}}
secrets:
  db_password: {file: ./secrets/db.txt}
"#;

fn project_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), text).unwrap();
    std::fs::write(dir.path().join("api.env"), "A=1\n").unwrap();
    std::fs::write(dir.path().join(".env"), "GREETING=hello from .env\n").unwrap();
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/db.txt"), "pw\n").unwrap();
    dir
}

fn load_text(text: &str, profiles: &[&str]) -> Result<Project, Vec<ManifestError>> {
    let dir = project_dir(text);
    let options = Options {
        profiles: profiles.iter().map(|p| (*p).to_owned()).collect(),
        ..Options::default()
    };
    load(
        &dir.path().join("compose.yaml"),
        "app/compose.yaml",
        &options,
    )
}

fn server<'a>(p: &'a Project, name: &str) -> &'a crate::manifest::ServerSpec {
    p.objects
        .iter()
        .find_map(|o| match &o.spec {
            Spec::Server(s) if o.name == name => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no server {name}"))
}

#[test]
fn a_project_of_four_services_becomes_servers_and_networks() {
    let p = load_text(SHOP, &[]).unwrap();
    assert_eq!(p.name, "shop");
    let mut keys: Vec<String> = p.objects.iter().map(|o| o.key().to_string()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "network/shop-back",
            "network/shop-front",
            "server/api",
            "server/db",
            "server/web"
        ]
    );
    let web = server(&p, "web");
    assert_eq!(
        web.command.as_deref().unwrap(),
        ["httpd", "-f", "-p", "8080", "-h", "/www"]
    );
    assert_eq!(web.restart_policy, RestartPolicy::Always);
    assert_eq!(web.ports.len(), 2);
    assert_eq!(web.ports[0].host.0, 8081);
    assert_eq!(web.ports[1].container.0, 9000);
    assert_eq!(web.volumes[0].kind, VolumeType::Bind);
    assert!(web.volumes[0].source.ends_with("/www") && web.volumes[0].read_only);
    assert_eq!(web.volumes[1].source, "shop_cache");
    assert_eq!(web.networks[0].name.0, "shop-front");
    assert_eq!(web.depends_on[0].name, "api");
    assert!(web.depends_on[0].restart);
    let o = p.objects.iter().find(|o| o.name == "web").unwrap();
    assert_eq!(o.labels["compose.project"], "shop");
    assert_eq!(o.labels["tier"], "web");
    assert_eq!(o.source, "app/compose.yaml");
    assert_eq!(o.line, 6, "the object points at its service");

    let api = server(&p, "api");
    assert_eq!(api.replicas, Some(2));
    assert!(api.start_first());
    assert_eq!(api.max_restarts, Some(4));
    assert_eq!(
        api.restart_policy,
        RestartPolicy::Never,
        "Compose's default"
    );
    let greeting = api
        .env
        .iter()
        .find(|(k, _)| k.0 == "GREETING")
        .map(|(_, v)| v);
    assert_eq!(
        greeting,
        Some(&crate::manifest::server::EnvValue::Literal(
            crate::manifest::ScalarString("hello from .env".into())
        ))
    );
    assert_eq!(
        api.env_file.0.len(),
        1,
        "a missing optional env file is left out"
    );
    let b = api.build.as_ref().unwrap();
    assert!(b.context.ends_with("/api"));
    assert_eq!(b.args["VERSION"].0, "1.2");
    let h = api.health_check.as_ref().unwrap();
    assert_eq!(h.interval, std::time::Duration::from_secs(90));
    assert_eq!(
        h.timeout,
        std::time::Duration::from_secs(30),
        "Compose's default timeout"
    );
    assert_eq!(h.retries, 5);
    assert_eq!(api.networks[1].aliases[0].0, "backend");
    assert_eq!(api.resources.as_ref().unwrap().memory.unwrap().0, 64 << 20);

    let db = server(&p, "db");
    assert_eq!(db.volumes[2].target.0, "/run/secrets/db_password");
    assert!(db.volumes[2].read_only);
    assert_eq!(db.volumes[1].source, "shop_db_scratch");
    assert_eq!(
        db.health_check.as_ref().unwrap().on_unhealthy,
        crate::manifest::health::OnUnhealthy::None
    );
    let back = p.objects.iter().find(|o| o.name == "shop-back").unwrap();
    assert!(matches!(&back.spec, Spec::Network(n) if n.subnet.is_some()));
}

#[test]
fn profiles_activate_their_services() {
    let p = load_text(SHOP, &["tools"]).unwrap();
    let job = server(&p, "job");
    assert_eq!(job.command.as_deref().unwrap(), ["true"]);
    let without = load_text(SHOP, &[]).unwrap();
    assert!(!without
        .objects
        .iter()
        .any(|o| o.key().kind == Kind::Server && o.name == "job"));
}

fn errors(text: &str) -> Vec<String> {
    load_text(text, &[])
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn keys_dockhand_cannot_honour_are_errors_at_their_line() {
    let e = errors("services:\n  web:\n    image: x\n    runtime: runc\n    imgae: y\n");
    assert_eq!(
        e,
        [
            "app/compose.yaml:4:5: services.web.runtime: not supported by dockhand",
            "app/compose.yaml:5:5: services.web.imgae: unknown key of a Compose service",
        ]
    );
    let e = errors("services:\n  web:\n    image: x\n    build: {context: ., ssh: [default]}\n");
    assert!(
        e[0].starts_with("app/compose.yaml:4:")
            && e[0].contains("ssh")
            && e[0].contains("not supported by dockhand"),
        "{e:?}"
    );
}

#[test]
fn harmless_keys_are_warnings_listed_once() {
    let p = load_text(
        "version: '3.8'\nservices:\n  web:\n    image: dockhand/busybox:local\n    logging: {driver: json-file}\n    container_name: shop-web\n",
        &[],
    )
    .unwrap();
    let w: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].starts_with("app/compose.yaml:1:1: version:"));
    assert!(w[1].starts_with("app/compose.yaml:5:5: services.web.logging:"));
    assert!(w[2].contains("container_name") && w[2].contains("shop-web"));
    assert_eq!(server(&p, "web").aliases[0].0, "shop-web");
}

#[test]
fn interpolation_errors_and_bad_values_name_their_line() {
    let e = errors("services:\n  web:\n    image: ${IMAGE:?set IMAGE first}\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("app/compose.yaml:3:") && e[0].contains("set IMAGE first"),
        "{e:?}"
    );
    let e = errors("services:\n  web:\n    image: x\n    ports: ['80:80:80:80']\n");
    assert!(
        e[0].starts_with("app/compose.yaml:4:5: services.web.ports:"),
        "{e:?}"
    );
    // A value only the manifest parser checks still points at the compose key.
    let e = errors("services:\n  web:\n    image: x\n    hostname: 'not a host name'\n");
    assert!(
        e[0].starts_with("app/compose.yaml:4:5: services.web.hostname:"),
        "{e:?}"
    );
    let e = errors("services:\n  web:\n    image: x\n    depends_on: [nope]\n");
    assert!(
        e[0].contains("\"nope\" is not a service of this file"),
        "{e:?}"
    );
}

#[test]
fn extends_merge_a_base_service_of_this_file_and_of_another() {
    let dir = project_dir(
        "services:\n  base:\n    image: dockhand/busybox:local\n    environment: {A: '1', B: '2'}\n  web:\n    extends: base\n    environment: {B: '3'}\n  other:\n    extends: {file: common/base.yaml, service: tool}\n",
    );
    std::fs::create_dir(dir.path().join("common")).unwrap();
    std::fs::write(
        dir.path().join("common/base.yaml"),
        "services:\n  tool:\n    image: dockhand/busybox:local\n    volumes: [./data:/data]\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("common/data")).unwrap();
    let p = load(
        &dir.path().join("compose.yaml"),
        "compose.yaml",
        &Options::default(),
    )
    .unwrap();
    let web = server(&p, "web");
    let env: Vec<(&str, &str)> = web
        .env
        .iter()
        .map(|(k, v)| match v {
            crate::manifest::server::EnvValue::Literal(s) => (k.0.as_str(), s.0.as_str()),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(env, [("A", "1"), ("B", "3")]);
    let other = server(&p, "other");
    assert!(
        other.volumes[0].source.ends_with("/common/data"),
        "{:?}",
        other.volumes
    );
}

#[test]
fn compose_forms_translate_to_their_dockhand_fields() {
    let p = load_text(
        r#"
services:
  one:
    image: dockhand/busybox:local
    network_mode: none
    restart: on-failure:3
    healthcheck: {test: [NONE]}
    tmpfs: /run
    volumes: [{type: tmpfs, target: /cache, tmpfs: {size: 1m}}]
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 64}
    extra_hosts: ["printer:10.0.0.9"]
    sysctls: [net.core.somaxconn=1024]
    stop_grace_period: 1m30s
    shm_size: 64m
    deploy: {update_config: {failure_action: rollback, monitor: 10s}}
  two:
    image: dockhand/busybox:local
    ports: ["9090-9091:8080-8081/udp"]
    deploy: {replicas: 0}
"#,
        &[],
    )
    .unwrap();
    let one = server(&p, "one");
    assert_eq!(one.network.as_ref().unwrap().0, "none");
    assert_eq!(one.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(one.max_restarts, Some(3));
    assert!(one.health_check.as_ref().unwrap().is_disabled());
    assert_eq!(one.tmpfs.len(), 2);
    assert_eq!(one.ulimits.len(), 2);
    assert_eq!(one.extra_hosts.len(), 1);
    assert_eq!(
        one.stop_grace_period,
        Some(std::time::Duration::from_secs(90))
    );
    assert_eq!(one.shm_size.unwrap().0, 64 << 20);
    assert_eq!(
        one.rollback_after(),
        Some(std::time::Duration::from_secs(10))
    );
    assert!(
        !p.objects.iter().any(|o| o.name == "two"),
        "replicas: 0 runs nothing"
    );
    assert!(p
        .warnings
        .iter()
        .any(|w| w.field == "services.two.deploy.replicas"));
}

#[test]
fn an_unset_variable_is_a_warning_at_its_line_and_reads_empty() {
    let p = load_text(
        "services:\n  web:\n    image: dockhand/busybox:local\n    environment:\n      A: \"x${DOCKHAND_TEST_SURELY_UNSET}y\"\n      B: ${DOCKHAND_TEST_SURELY_UNSET:-fallback}\n",
        &[],
    )
    .unwrap();
    let w: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        ["app/compose.yaml:5:10: variable DOCKHAND_TEST_SURELY_UNSET is not set: it reads as an empty string"],
        "one warning, and none for the use with a default"
    );
    let env = &server(&p, "web").env;
    let values: Vec<String> = env
        .values()
        .map(|v| match v {
            crate::manifest::server::EnvValue::Literal(s) => s.0.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(values, ["xy", "fallback"]);
}

#[test]
fn override_files_and_unsupported_forms_are_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compose.override.yaml");
    std::fs::write(&path, "services: {}\n").unwrap();
    let e = load(&path, "compose.override.yaml", &Options::default()).unwrap_err();
    assert!(e[0].message.contains("override files are not merged"));
    let e = errors("services:\n  web:\n    image: x\n    network_mode: service:db\n");
    assert!(
        e[0].starts_with("app/compose.yaml:4:5: services.web.network_mode:"),
        "{e:?}"
    );
    let e = errors("services:\n  web:\n    image: x\n    platform: linux/s390x\n");
    assert!(e[0].contains("not this host's platform"), "{e:?}");
    let e = errors("services:\n  web:\n    image: x\n    x-dockhand: {maxRestarts: many}\n");
    assert!(
        e[0].starts_with("app/compose.yaml:4:5: services.web.x-dockhand:"),
        "{e:?}"
    );
    let e = errors("include: [other.yaml]\nservices: {}\n");
    assert!(
        e[0].contains("include") && e[0].contains("not supported"),
        "{e:?}"
    );
}

#[test]
fn a_swarm_compose_files_deploy_keys_become_dockhands_swarm_fields() {
    let p = load_text(
        r#"
services:
  web:
    image: dockhand/busybox:local
    ports: [{target: 8080, published: 18080, mode: host}]
    deploy:
      replicas: 3
      endpoint_mode: dnsrr
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 1
      resources: {reservations: {memory: 64m, cpus: "0.25"}}
      restart_policy: {condition: any, delay: 2s, window: 30s}
      update_config: {parallelism: 2, delay: 10s}
      rollback_config: {parallelism: 1}
"#,
        &[],
    )
    .unwrap();
    let web = server(&p, "web");
    assert_eq!(
        web.endpoint_mode,
        Some(crate::manifest::server::EndpointMode::Dnsrr)
    );
    let placement = web.placement.as_ref().unwrap();
    assert_eq!(placement.constraints[0].0, "node.role == worker");
    assert_eq!(placement.preferences[0].spread.0, "node.labels.zone");
    assert_eq!(placement.max_replicas_per_node, Some(1));
    let reserved = web
        .resources
        .as_ref()
        .unwrap()
        .reservations
        .as_ref()
        .unwrap();
    assert_eq!(reserved.memory.unwrap().0, 64 << 20);
    assert_eq!(web.restart_delay, Some(std::time::Duration::from_secs(2)));
    assert_eq!(web.restart_window, Some(std::time::Duration::from_secs(30)));
    let update = web.update.as_ref().unwrap();
    assert_eq!(update.parallelism, Some(2));
    assert_eq!(update.delay, Some(std::time::Duration::from_secs(10)));
    assert_eq!(
        web.ports[0].mode,
        Some(crate::manifest::fields::PublishMode::Host)
    );
}

/// What a controller reads compose files with: no variable of its own, files below `dir` only.
fn confined(dir: &std::path::Path) -> Options {
    Options {
        allowed_env: Some(Vec::new()),
        confine: Some(vec![dir.to_path_buf()]),
        ..Options::default()
    }
}

#[test]
fn a_controllers_compose_files_read_no_host_file_and_none_of_its_variables() {
    // The safety review's three leaks: `extends.file` of a root-only compose file, a `.env`
    // linked to a root-only file, and `${VAR}` of the controller's own environment.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("compose.yaml"),
        "services:\n  db:\n    image: x\n    environment: {POSTGRES_PASSWORD: ROOTONLY-COMPOSE-PASSWORD-7731}\n",
    )
    .unwrap();
    std::fs::write(
        outside.path().join("prod.env"),
        "PROD_DB_PASSWORD=ROOTONLY-DOTENV-PASSWORD-4410\n",
    )
    .unwrap();
    std::env::set_var(
        "DOCKHAND_TEST_CONTROLLER_SECRET",
        "CONTROLLER-ENV-SECRET-9921",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  a:\n    extends: {{file: {}, service: db}}\n",
            outside.path().join("compose.yaml").display()
        ),
    )
    .unwrap();
    let e = load(&file, "compose.yaml", &confined(dir.path())).unwrap_err();
    let shown = format!("{e:?}");
    assert!(shown.contains("outside the manifests directory"), "{shown}");
    assert!(!shown.contains("ROOTONLY"), "{shown}");

    std::os::unix::fs::symlink(outside.path().join("prod.env"), dir.path().join(".env")).unwrap();
    std::fs::write(
        &file,
        "services:\n  a:\n    image: dockhand/busybox:local\n    environment: {P: '${PROD_DB_PASSWORD}'}\n",
    )
    .unwrap();
    let e = load(&file, "compose.yaml", &confined(dir.path())).unwrap_err();
    let shown = format!("{e:?}");
    assert!(
        shown.contains(".env") && shown.contains("outside"),
        "{shown}"
    );
    assert!(!shown.contains("ROOTONLY"), "{shown}");
    std::fs::remove_file(dir.path().join(".env")).unwrap();

    std::fs::write(
        &file,
        "services:\n  a:\n    image: dockhand/busybox:local\n    environment: {LEAKED: '${DOCKHAND_TEST_CONTROLLER_SECRET}'}\n",
    )
    .unwrap();
    let env_of = |options: &Options| {
        let p = load(&file, "compose.yaml", options).unwrap();
        format!("{:?}", server(&p, "a").env)
    };
    assert!(!env_of(&confined(dir.path())).contains("CONTROLLER-ENV"));
    let allowed = Options {
        allowed_env: Some(vec!["DOCKHAND_TEST_CONTROLLER_*".into()]),
        ..confined(dir.path())
    };
    assert!(
        env_of(&allowed).contains("CONTROLLER-ENV-SECRET-9921"),
        "the operator allowed it"
    );
    // `convert`, run by a user in their own shell, reads their environment.
    assert!(env_of(&Options::default()).contains("CONTROLLER-ENV-SECRET-9921"));
}

#[test]
fn deep_nesting_and_long_extends_chains_are_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    // 500 nested defaults: 3.5 KB that aborted `up` at every restart.
    let n = 500;
    let nested = format!("{}x{}", "${U:-".repeat(n), "}".repeat(n));
    std::fs::write(
        &file,
        format!("services:\n  a:\n    image: 'dockhand/busybox:{nested}'\n"),
    )
    .unwrap();
    let shown = format!(
        "{:?}",
        load(&file, "compose.yaml", &Options::default()).unwrap_err()
    );
    assert!(shown.contains("nested more than"), "{shown}");
    // 400 services, each extending the one before (10 KB).
    let mut text = String::from("services:\n  s0:\n    image: dockhand/busybox:local\n");
    for i in 1..400 {
        text.push_str(&format!("  s{i}:\n    extends: s{}\n", i - 1));
    }
    std::fs::write(&file, text).unwrap();
    let shown = format!(
        "{:?}",
        load(&file, "compose.yaml", &Options::default()).unwrap_err()
    );
    assert!(shown.contains("a chain of more than"), "{shown}");
}

#[test]
fn a_fifo_named_as_an_extends_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("base.yaml");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  a:\n    extends: {file: base.yaml, service: b}\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    for options in [Options::default(), confined(dir.path())] {
        let shown = format!("{:?}", load(&file, "compose.yaml", &options).unwrap_err());
        assert!(shown.contains("FIFO"), "{shown}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// Compose text made of the pieces attacks and real files use: interpolations nested in
/// defaults, anchors and merge keys, `extends` of this file and of another, odd scalars.
fn compose_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        Just("${U:-".to_owned()),
        Just("}".to_owned()),
        Just("$$".to_owned()),
        Just("${SET}".to_owned()),
        Just("${U:?no}".to_owned()),
        Just("$U".to_owned()),
        Just("x".to_owned()),
        Just("{".to_owned()),
    ];
    let value = proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat());
    let service = (0usize..6, value.clone(), 0usize..4).prop_map(|(i, v, form)| match form {
        0 => format!("  s{i}:\n    image: 'busybox:{v}'\n"),
        1 => format!("  s{i}:\n    extends: s{}\n    environment: {{A: '{v}'}}\n", (i + 1) % 6),
        2 => format!("  s{i}:\n    extends: {{file: base.yaml, service: b}}\n    command: ['{v}']\n"),
        _ => format!("  s{i}: &a{i}\n    image: busybox\n    healthcheck: {{test: ['CMD', '{v}'], retries: 3}}\n  t{i}:\n    <<: *a{i}\n"),
    });
    proptest::collection::vec(service, 0..8).prop_map(|s| format!("services:\n{}", s.concat()))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// The fuzz target's property on stable (`fuzz/fuzz_targets/compose.rs` explores further):
    /// any such file loads as a project or as errors, in bounded time, never a panic.
    #[test]
    fn any_compose_file_loads_or_errs_and_never_panics(main in compose_text(), base in compose_text()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), &main).unwrap();
        std::fs::write(dir.path().join("base.yaml"), base.replace("  s0:", "  b:")).unwrap();
        let started = std::time::Instant::now();
        let _ = load(&dir.path().join("compose.yaml"), "compose.yaml", &confined(dir.path()));
        proptest::prop_assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

/// Loads `text` as `compose.yaml` in a folder of its own.
fn load_alone(text: &str) -> Result<Project, Vec<ManifestError>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), text).unwrap();
    load(
        &dir.path().join("compose.yaml"),
        "compose.yaml",
        &Options::default(),
    )
}

#[test]
fn anchors_aliases_and_merge_keys_read_exactly_as_yaml_reads_them() {
    let p = load_alone(
        "x-hc: &hc\n  interval: 10s\n  retries: 5\nx-env: &env\n  A: '1'\nx-r: &r 3\nx-ports: &ports ['8080:80']\nservices:\n  a:\n    image: busybox\n    healthcheck:\n      test: [CMD, 'true']\n      <<: *hc\n    environment:\n      <<: *env\n      B: '2'\n  b:\n    image: busybox\n    healthcheck: {test: [CMD, 'true'], retries: *r}\n    ports: *ports\n    environment: *env\n",
    )
    .expect("loads");
    let a = server(&p, "a");
    let hc = a.health_check.as_ref().expect("a check");
    assert_eq!(hc.retries, 5);
    assert_eq!(hc.interval, std::time::Duration::from_secs(10));
    assert_eq!(a.env.len(), 2);
    let b = server(&p, "b");
    assert_eq!(b.health_check.as_ref().expect("a check").retries, 3);
    assert_eq!(b.ports[0].container.0, 80);
    // 142 aliases of 10 anchors (a real file's shape) is no attack.
    let mut text = String::from("x-a: &a {image: busybox}\n");
    for i in 0..10 {
        text.push_str(&format!("x-v{i}: &v{i} 'value {i}'\n"));
    }
    text.push_str("services:\n");
    for s in 0..14 {
        text.push_str(&format!("  s{s}:\n    <<: *a\n    environment:\n"));
        for i in 0..10 {
            text.push_str(&format!("      V{i}: *v{i}\n"));
        }
    }
    assert_eq!(load_alone(&text).expect("loads").objects.len(), 14);
}

#[test]
fn a_billion_laughs_is_refused_with_a_clear_error() {
    let mut text = String::from("x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let mut prev = 'a';
    for n in "bcdefghi".chars() {
        text.push_str(&format!(
            "x-{n}: &{n} [{}]\n",
            vec![format!("*{prev}"); 9].join(", ")
        ));
        prev = n;
    }
    text.push_str("services:\n  s:\n    image: busybox\n    command: *i\n");
    let shown = format!("{:?}", load_alone(&text).unwrap_err());
    assert!(shown.contains("YAML aliases expand past"), "{shown}");
    assert!(!shown.contains("budget breached"), "{shown}");
}

#[test]
fn compose_no_ops_are_no_ops_here_too() {
    let p = load_alone(
        "services:\n  a:\n    image: busybox\n    platform: ''\n    healthcheck: {disable: false}\n",
    )
    .expect("no-ops load");
    assert!(server(&p, "a").health_check.is_none());
}

#[test]
fn convert_lists_every_missing_bind_source_with_the_mkdir_that_makes_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  a:\n    image: busybox\n    volumes: ['/srv/nope-a:/a', '/srv/nope-b:/b']\n",
    )
    .unwrap();
    let errors = load(&file, "compose.yaml", &Options::default()).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let options = Options {
        missing_binds_warn: true,
        ..Options::default()
    };
    let p = load(&file, "compose.yaml", &options).expect("translates");
    let shown: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    for path in ["/srv/nope-a", "/srv/nope-b"] {
        assert!(
            shown
                .iter()
                .any(|w| w.contains(&format!("mkdir -p {path}")) && w.contains(":4:")),
            "{shown:?}"
        );
    }
}

#[test]
fn links_are_a_dependency_and_a_name_the_linked_service_answers_to() {
    let p = load_alone(
        "services:\n  app:\n    image: busybox\n    links: ['postgres:db', redis]\n  postgres:\n    image: busybox\n  redis:\n    image: busybox\n",
    )
    .expect("loads");
    let app = server(&p, "app");
    let deps: Vec<&str> = app.depends_on.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(deps, ["postgres", "redis"]);
    let pg = server(&p, "postgres");
    assert!(pg.aliases.iter().any(|a| a.0 == "db"), "{:?}", pg.aliases);
    let e = load_alone("services:\n  app:\n    image: busybox\n    links: [nope]\n").unwrap_err();
    assert!(format!("{e:?}").contains("not an active service"), "{e:?}");
}

#[test]
fn error_paths_name_every_key_and_are_never_cut() {
    let e = load_alone(
        "services:\n  web:\n    image: busybox\n  worker:\n    image: busybox\n    healthcheck: {test: [CMD, 'true'], retries: many}\n",
    )
    .unwrap_err();
    assert_eq!(e[0].field, "services.worker.healthcheck.retries", "{e:?}");
    let e = load_alone(
        "services:\n  vllm:\n    image: busybox\n    deploy:\n      resources:\n        reservations:\n          devices: [{driver: nvidia}]\n",
    )
    .unwrap_err();
    assert_eq!(
        e[0].field, "services.vllm.deploy.resources.reservations.devices",
        "{e:?}"
    );
    let e = load_alone(
        "services:\n  a:\n    image: busybox\nnetworks:\n  back:\n    enable_ipv6: true\n",
    )
    .unwrap_err();
    assert_eq!(e[0].field, "networks.back.enable_ipv6", "{e:?}");
}
