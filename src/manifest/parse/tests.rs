use super::*;

const WEB: &str =
    "apiVersion: dockhand/v1\nkind: Server\nmetadata:\n  name: web\nspec:\n  image: busybox\n";

fn errors(text: &str) -> Vec<ManifestError> {
    parse_str(text, "m.yaml", None).expect_err("should fail")
}

#[test]
fn a_minimal_server_parses() {
    let objs = parse_str(WEB, "m.yaml", None).expect("parses");
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0].name, "web");
    assert_eq!(objs[0].line, 4);
}

#[test]
fn several_documents_keep_their_own_lines() {
    let text = format!("# leading comment\n{WEB}---\n{}", WEB.replace("web", "api"));
    let objs = parse_str(&text, "m.yaml", None).expect("parses");
    assert_eq!(
        objs.iter()
            .map(|o| (o.name.as_str(), o.line))
            .collect::<Vec<_>>(),
        [("web", 5), ("api", 12)]
    );
}

#[test]
fn unknown_field_names_line_column_field_and_allowed_fields() {
    let text = format!("{WEB}  ports:\n    - {{container: 80, hots: 1}}\n");
    let e = &errors(&text)[0];
    assert_eq!((e.line, e.column), (8, 23));
    assert_eq!(e.field, "spec.ports[0].hots");
    assert!(
        e.message.contains("expected one of container, host"),
        "{}",
        e.message
    );
}

#[test]
fn unknown_kind_lists_the_allowed_kinds() {
    let e = &errors("apiVersion: dockhand/v1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n")[0];
    assert_eq!((e.line, e.column, e.field.as_str()), (2, 7, "kind"));
    assert!(
        e.message.contains("expected one of Server"),
        "{}",
        e.message
    );
}

#[test]
fn wrong_api_version_is_rejected() {
    let e = &errors("apiVersion: v2\nkind: Server\nmetadata: {name: a}\nspec: {}\n")[0];
    assert_eq!((e.line, e.field.as_str()), (1, "apiVersion"));
}

#[test]
fn bad_values_are_reported_where_they_stand() {
    let cases = [
        (
            "  ports:\n    - container: 99999\n",
            8,
            "spec.ports[0].container",
            "1 to 65535",
        ),
        (
            "  resources: {memory: lots}\n",
            7,
            "spec.resources.memory",
            "256m",
        ),
        (
            "  restartPolicy: Sometimes\n",
            7,
            "spec.restartPolicy",
            "Always",
        ),
        (
            "  volumes:\n    - {type: volume, source: /etc, target: /x}\n",
            8,
            "spec.volumes[0]",
            "volume name",
        ),
        ("  workingDir: srv\n", 7, "spec.workingDir", "absolute"),
    ];
    for (extra, line, field, hint) in cases {
        let e = &errors(&format!("{WEB}{extra}"))[0];
        assert_eq!((e.line, e.field.as_str()), (line, field), "{e}");
        assert!(e.message.contains(hint), "{e}");
    }
}

#[test]
fn bad_name_is_reported_on_its_line() {
    let e = &errors(&WEB.replace("name: web", "name: Web_1"))[0];
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (4, 9, "metadata.name")
    );
    assert!(e.message.contains("DNS label"));
}

#[test]
fn syntax_errors_have_positions() {
    let e = &errors("apiVersion: dockhand/v1\nkind: Server\nmetadata:\n  name: [web\n")[0];
    assert!(e.line >= 4, "{e}");
}

#[test]
fn one_bad_document_makes_the_file_invalid() {
    let text = format!("{WEB}---\n{}", WEB.replace("busybox", "a b"));
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 13);
}

#[test]
fn relative_bind_sources_resolve_against_the_manifest_directory() {
    let text =
        format!("{WEB}  volumes:\n    - {{type: bind, source: ./www/../site, target: /www}}\n");
    let objs = parse_str(&text, "m.yaml", Some(Path::new("/srv/manifests"))).expect("parses");
    let Spec::Server(s) = &objs[0].spec else {
        panic!("a server")
    };
    assert_eq!(s.volumes[0].source, "/srv/manifests/site");
    assert!(parse_str(&text, "m.yaml", None).is_err());
}

#[test]
fn databases_and_from_database_values_parse_and_are_checked() {
    let text = "apiVersion: dockhand/v1\nkind: Database\nmetadata: {name: orders}\nspec: {deletionPolicy: Delete, readyTimeout: 5s}\n---\napiVersion: dockhand/v1\nkind: Server\nmetadata: {name: api}\nspec:\n  image: x\n  env: {URL: {fromDatabase: orders}, PORT: {fromDatabase: orders, key: port}, MODE: 1}\n";
    let objs = parse_str(text, "m.yaml", None).expect("parses");
    let Spec::Database(d) = &objs[0].spec else {
        panic!("a database")
    };
    assert_eq!(d.image(), "postgres:16");
    assert_eq!(
        d.deletion_policy,
        crate::manifest::database::DeletionPolicy::Delete
    );
    let Spec::Server(s) = &objs[1].spec else {
        panic!("a server")
    };
    assert_eq!(s.env.values().filter_map(|v| v.database()).count(), 2);

    let bad = |spec: &str| {
        parse_str(
            &format!(
                "apiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: db}}\nspec: {spec}\n"
            ),
            "m.yaml",
            None,
        )
        .expect_err("invalid")[0]
            .clone()
    };
    let e = bad("{user: '1st'}");
    assert_eq!(e.field, "spec.user");
    let e = bad("{deletionPolicy: Never}");
    assert!(e.message.contains("Retain"), "{e}");
    let e = bad("{engine: mysql}");
    assert!(e.message.contains("postgres"), "{e}");
    // Backups: a schedule cron understands, one target, never the data's own volume.
    let e = bad("{backup: {schedule: '0 25 * * *', to: {volume: b}}}");
    assert!(e.message.contains("hour"), "{e}");
    assert!(e.line > 0, "{e}");
    let e = bad("{backup: {schedule: '@daily', to: {volume: b, path: /srv}}}");
    assert_eq!(e.field, "spec.backup.to");
    let e = bad("{backup: {schedule: '@daily', to: {path: backups}}}");
    assert_eq!(e.field, "spec.backup.to.path");
    let e = bad("{backup: {schedule: '@daily', to: {volume: db-data}}}");
    assert_eq!(e.field, "spec.backup.to.volume");
    let e = bad("{restoreFrom: latest}");
    assert_eq!(e.field, "spec.restoreFrom");
    let e = bad("{restoreFrom: dump.sql}");
    assert!(e.message.contains("absolute"), "{e}");
    let e = &parse_str("apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: a}\nspec: {image: x, env: {U: {fromDatabase: db, key: secret}}}\n", "m.yaml", None).expect_err("bad key")[0];
    assert!(e.message.contains("url"), "{e}");
}

#[test]
fn empty_documents_and_comments_are_skipped() {
    assert!(parse_str("# nothing\n---\n---\n", "m.yaml", None)
        .expect("parses")
        .is_empty());
}

#[test]
fn reserved_label_prefix_is_rejected() {
    let e = &errors(&WEB.replace("name: web", "name: web\n  labels: {dockhand.kind: x}"))[0];
    assert!(e.message.contains("reserved"), "{e}");
}

#[test]
fn spec_hash_ignores_source_but_not_labels() {
    let a = &parse_str(WEB, "a.yaml", None).expect("parses")[0];
    let mut b = a.clone();
    b.source = "b.yaml".into();
    assert_eq!(a.spec_hash(), b.spec_hash());
    b.labels.insert("tier".into(), "x".into());
    assert_ne!(a.spec_hash(), b.spec_hash());
}

#[test]
fn stored_json_round_trips_to_the_same_hash() {
    let text = format!("{WEB}  resources: {{memory: 64m, cpus: 500m}}\n  ports: [{{container: 80}}]\n  env: {{A: 1}}\n  stopGracePeriod: 2s\n");
    let a = &parse_str(&text, "a.yaml", None).expect("parses")[0];
    let json = serde_json::to_string(a).expect("serializes");
    let b: Object = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(a, &b);
    assert_eq!(a.spec_hash(), b.spec_hash());
}

#[test]
fn a_manifest_of_only_markers_is_refused_without_exhausting_memory() {
    // 128 KiB of `---` lines used to copy the file once per document and abort the process.
    let text = "---\n".repeat(32 * 1024);
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.contains("too many documents"),
        "{}",
        errs[0]
    );
    assert!(errs[0].to_string().starts_with("m.yaml: "), "{}", errs[0]);
}

#[test]
fn a_manifest_over_the_size_cap_is_refused() {
    let text = format!("{WEB}#{}\n", "x".repeat(MAX_MANIFEST_BYTES));
    let errs = errors(&text);
    assert!(errs[0].message.contains("too large"), "{}", errs[0]);
}

#[test]
fn the_last_of_many_documents_reports_its_own_line() {
    let docs: Vec<String> = (0..MAX_DOCUMENTS)
        .map(|i| WEB.replace("name: web", &format!("name: web{i}")))
        .collect();
    let mut text = docs.join("---\n");
    let objects = parse_str(&text, "m.yaml", None).expect("parses");
    assert_eq!(objects.len(), MAX_DOCUMENTS);
    assert_eq!(
        objects[MAX_DOCUMENTS - 1].line,
        7 * (MAX_DOCUMENTS as u64 - 1) + 4
    );
    text.push_str("---\napiVersion: dockhand/v1\nkind: Server\nmetadata: {name: x}\nspec: {image: a, prots: []}\n");
    let errs = errors(&text);
    assert!(
        errs[0].message.contains("too many documents"),
        "{}",
        errs[0]
    );
    let one_too_many = docs[..MAX_DOCUMENTS - 1].join("---\n")
        + "---\napiVersion: dockhand/v1\nkind: Server\nmetadata: {name: x}\nspec: {image: a, prots: []}\n";
    let errs = errors(&one_too_many);
    assert_eq!(
        errs[0].line,
        7 * (MAX_DOCUMENTS as u64 - 1) + 4,
        "{}",
        errs[0]
    );
}

#[test]
fn an_alias_bomb_is_an_error_not_an_explosion() {
    let mut text = String::from("apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec:\n  image: busybox\n  command: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!("  x{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    assert!(parse_str(&text, "m.yaml", None).is_err());
}

#[test]
fn carriage_return_line_ends_parse_like_newlines() {
    let two = format!("{WEB}---\n{}", WEB.replace("web", "api"));
    for text in [two.replace('\n', "\r\n"), two.replace('\n', "\r")] {
        let objs = parse_str(&text, "m.yaml", None).expect("parses");
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].line, 11);
    }
}

#[test]
fn errors_quote_no_more_than_a_glimpse_of_the_file() {
    let secret = format!("root:${}:19000:0:99999:7:::", "x".repeat(80));
    let errs = errors(&format!("{secret}\n"));
    let text = errs[0].to_string();
    assert!(!text.contains(&"x".repeat(40)), "{text}");
    let errs = errors(&format!(
        "{WEB}  user: [\"a\u{1b}[31m{}\"]\n",
        "y".repeat(60)
    ));
    let text = errs[0].to_string();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(!text.contains(&"y".repeat(40)), "{text}");
}

#[test]
fn scalars_keep_exactly_the_text_written() {
    let text = format!(
        "{WEB}  user: 0100\n  env:\n    COUNTRY: no\n    VERSION: 1.10\n    MODE: 010\n    ON: on\n    BIG: 1e3\n    HEX: 0x1F\n    NEG: -0.50\n    FLOW: {{a: 1}}\n    QUOTED: \"1.10\"\n    INF: .inf\n  dependsOn: [y, n]\n"
    );
    let text = text.replace("FLOW: {a: 1}", "TILDE: ~x");
    let objs = parse_str(&text, "m.yaml", None).expect("parses");
    let Spec::Server(s) = &objs[0].spec else {
        panic!("a server")
    };
    let env: Vec<(String, String)> = s
        .env
        .iter()
        .map(|(k, v)| match v {
            crate::manifest::server::EnvValue::Literal(l) => (k.0.clone(), l.0.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    for (k, v) in [
        ("COUNTRY", "no"),
        ("VERSION", "1.10"),
        ("MODE", "010"),
        ("ON", "on"),
        ("BIG", "1e3"),
        ("HEX", "0x1F"),
        ("NEG", "-0.50"),
        ("QUOTED", "1.10"),
        ("INF", ".inf"),
        ("TILDE", "~x"),
    ] {
        assert!(env.contains(&(k.into(), v.into())), "{k}: {env:?}");
    }
    assert_eq!(s.user.as_ref().map(|u| u.0.as_str()), Some("0100"));
    let names: Vec<&str> = s.depends_on.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["y", "n"]);
}

#[test]
fn label_values_and_flow_env_keep_their_text() {
    let text = "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web, labels: {tier: off, v: 2.0}}\nspec: {image: busybox, env: {A: yes, B: 1.50}}\n";
    let objs = parse_str(text, "m.yaml", None).expect("parses");
    assert_eq!(objs[0].labels.get("tier").map(String::as_str), Some("off"));
    assert_eq!(objs[0].labels.get("v").map(String::as_str), Some("2.0"));
    let Spec::Server(s) = &objs[0].spec else {
        panic!("a server")
    };
    let json = serde_json::to_string(&s.env).expect("json");
    assert_eq!(json, r#"{"A":"yes","B":"1.50"}"#);
}

#[test]
fn the_container_options_real_services_use_parse() {
    let extra = "  hostname: web-1\n  extraHosts: {db.local: 10.0.0.5, host.docker.internal: host-gateway, v6: '::1'}\n  capAdd: [NET_ADMIN]\n  capDrop: [ALL]\n  privileged: true\n  devices: [/dev/fuse, '/dev/sda:/dev/xvda:r']\n  sysctls: {net.core.somaxconn: 1024}\n  shmSize: 256m\n  tmpfs: [/run, '/tmp:size=64m,mode=1777']\n  ulimits: {nofile: {soft: 1024, hard: 65536}, nproc: 512, core: -1}\n  init: true\n  stopSignal: SIGQUIT\n  readOnlyRootFilesystem: true\n  securityOpt: [no-new-privileges, 'apparmor=docker-default']\n  envFile: /srv/.env\n  tty: true\n  stdin: true\n  healthCheck: {disable: true}\n  ports: ['127.0.0.1:8080:80', '53:53/udp', 9000, '[::1]:8443:443', {container: 81, hostIp: 127.0.0.1}]\n";
    let objs = parse_str(&format!("{WEB}{extra}"), "m.yaml", None).expect("parses");
    let Spec::Server(s) = &objs[0].spec else {
        panic!("a server")
    };
    assert_eq!(s.shm_size.map(|z| z.0), Some(256 << 20));
    assert_eq!(s.ulimits.len(), 3);
    assert_eq!(s.devices[1].permissions, "r");
    assert_eq!(s.env_file.0[0].0, "/srv/.env");
    assert!(s.health_check.as_ref().is_some_and(|h| h.is_disabled()));
    let ports: Vec<(u16, u16, Option<String>, &str)> = s
        .ports
        .iter()
        .map(|p| {
            (
                p.container.0,
                p.host.0,
                p.host_ip.map(|i| i.to_string()),
                p.protocol.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (80, 8080, Some("127.0.0.1".into()), "tcp"),
            (53, 53, None, "udp"),
            (9000, 0, None, "tcp"),
            (443, 8443, Some("::1".into()), "tcp"),
            (81, 0, Some("127.0.0.1".into()), "tcp"),
        ]
    );
    // The stored form reads back the same.
    let json = serde_json::to_value(s).expect("serializes");
    let back: crate::manifest::ServerSpec = serde_json::from_value(json).expect("reads back");
    assert_eq!(&back, s);
}

#[test]
fn bad_container_options_name_their_field() {
    let cases = [
        (
            "  extraHosts: {db: nowhere}\n",
            "spec.extraHosts.db",
            "host-gateway",
        ),
        ("  capAdd: ['NET ADMIN']\n", "spec.capAdd[0]", "NET_ADMIN"),
        (
            "  devices: [/etc/passwd]\n",
            "spec.devices[0]",
            "under /dev",
        ),
        (
            "  devices: ['/dev/fuse:/dev/fuse:x']\n",
            "spec.devices[0]",
            "rwm",
        ),
        (
            "  sysctls: {somaxconn: 1}\n",
            "spec.sysctls.somaxconn",
            "dotted",
        ),
        ("  shmSize: lots\n", "spec.shmSize", "256m"),
        ("  tmpfs: [run]\n", "spec.tmpfs[0]", "absolute"),
        ("  ulimits: {files: 1}\n", "spec.ulimits.files", "nofile"),
        (
            "  ulimits: {nofile: {soft: 10, hard: 5}}\n",
            "spec.ulimits.nofile",
            "soft no higher",
        ),
        (
            "  ulimits: {nofile: many}\n",
            "spec.ulimits.nofile",
            "a number",
        ),
        ("  stopSignal: term\n", "spec.stopSignal", "SIGTERM"),
        (
            "  securityOpt: ['seccomp=/etc/profile.json']\n",
            "spec.securityOpt[0]",
            "not supported",
        ),
        (
            "  securityOpt: [privileged]\n",
            "spec.securityOpt[0]",
            "no-new-privileges",
        ),
        ("  ports: ['8080:80:90:1']\n", "spec.ports[0]", "HOST_IP"),
        (
            "  ports: ['localhost:8080:80']\n",
            "spec.ports[0]",
            "IP address",
        ),
        ("  ports: ['80/sctp']\n", "spec.ports[0]", "tcp or udp"),
        (
            "  healthCheck: {disable: true, tcp: {port: 80}}\n",
            "spec.healthCheck",
            "takes no",
        ),
        (
            "  tmpfs: [/data]\n  volumes: [{type: volume, source: d, target: /data}]\n",
            "spec.tmpfs[0]",
            "twice",
        ),
        (
            "  network: host\n  hostname: x\n",
            "spec.hostname",
            "host's name",
        ),
    ];
    for (extra, field, hint) in cases {
        let e = &errors(&format!("{WEB}{extra}"))[0];
        assert_eq!(e.field, field, "{extra}: {e}");
        assert!(e.message.contains(hint), "{extra}: {e}");
    }
}

#[test]
fn a_relative_env_file_is_resolved_against_the_manifest_directory() {
    let objs = parse_str(
        &format!("{WEB}  envFile: [.env, ../shared/app.env]\n"),
        "m.yaml",
        Some(Path::new("/srv/app")),
    )
    .expect("parses");
    let Spec::Server(s) = &objs[0].spec else {
        panic!("a server")
    };
    let files: Vec<&str> = s.env_file.0.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(files, ["/srv/app/.env", "/srv/shared/app.env"]);
    let e = &errors(&format!("{WEB}  envFile: .env\n"))[0];
    assert_eq!(e.field, "spec.envFile[0]");
}

#[test]
fn build_takes_a_context_or_the_full_form_and_needs_no_image() {
    let text =
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: api}\nspec:\n  build: ./api\n";
    let objs = parse_str(text, "m.yaml", Some(Path::new("/srv/app"))).expect("parses");
    let Spec::Server(s) = &objs[0].spec else {
        panic!("a server")
    };
    assert_eq!(
        s.build.as_ref().map(|b| b.context.as_str()),
        Some("/srv/app/api")
    );
    let full = text.replace(
        "build: ./api",
        "build: {context: ., dockerfile: docker/api.Dockerfile, args: {VERSION: 1.10}, target: prod}",
    );
    let objs = parse_str(&full, "m.yaml", Some(Path::new("/srv/app"))).expect("parses");
    let Spec::Server(s) = &objs[0].spec else {
        panic!("a server")
    };
    let b = s.build.as_ref().expect("build");
    assert_eq!(b.args["VERSION"].0, "1.10");
    assert_eq!(b.target.as_deref(), Some("prod"));
    let e = &errors(&text.replace(
        "build: ./api",
        "build: {context: ., dockerfile: ../Dockerfile}",
    ))[0];
    assert!(e.message.contains("inside the context"), "{e}");
    let e = &errors(&text.replace("  build: ./api\n", "  command: [sh]\n"))[0];
    assert_eq!(e.field, "spec.image", "{e}");
    let e = &errors(&text.replace("build: ./api", "build: {context: ., dockerfil: x}"))[0];
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn secrets_and_their_uses_round_trip_through_stored_json() {
    let text = format!("{WEB}  secrets: [tok, {{name: key, target: key.pem, mode: '0440', uid: 7}}]\n  env: {{T: {{fromSecret: tok}}}}\n---\napiVersion: dockhand/v1\nkind: Secret\nmetadata: {{name: tok}}\nspec: {{env: TOKEN}}\n---\napiVersion: dockhand/v1\nkind: Secret\nmetadata: {{name: key}}\nspec: {{file: /etc/key.pem}}\n---\napiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: db}}\nspec: {{password: {{fromSecret: tok}}}}\n");
    for a in parse_str(&text, "a.yaml", None).expect("parses") {
        let json = serde_json::to_string(&a).expect("serializes");
        let b: Object = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(a, b, "{json}");
    }
}

#[test]
fn a_secret_takes_exactly_one_source_and_says_so() {
    let secret = |spec: &str| {
        format!("apiVersion: dockhand/v1\nkind: Secret\nmetadata: {{name: s}}\nspec: {spec}\n")
    };
    let e = &errors(&secret("{file: a, env: B}"))[0];
    assert_eq!(e.field, "spec");
    assert!(
        e.message.contains("exactly one of file, env or encrypted"),
        "{e}"
    );
    let e = &errors(&secret("{encrypted: hello}"))[0];
    assert_eq!(e.field, "spec.encrypted");
    let e = &errors(&secret("{file: rel.txt}"))[0];
    assert!(e.message.contains("absolute path"), "{e}");
    let e = &errors(&format!("{WEB}  secrets: [{{name: k, target: ../x}}]\n"))[0];
    assert!(e.message.contains("expected a file name"), "{e}");
    let e = &errors(&format!("{WEB}  secrets: [{{name: k, mode: '0999'}}]\n"))[0];
    assert!(e.message.contains("octal"), "{e}");
    let e = &errors(&format!("{WEB}  env: {{A: {{fromSecret: s, key: url}}}}\n"))[0];
    assert!(e.message.contains("fromSecret: NAME"), "{e}");
}
