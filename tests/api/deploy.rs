//! The deployment files: no Docker engine runs here, so the compose file's
//! structure is checked by parsing it, and kept in step with the config.

use serde_yaml::Value;

use crate::helpers::{exists, root};

fn compose() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("docker-compose.yaml")).unwrap()).unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn every_image_is_pinned_and_postgres_is_15_with_a_volume() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    for (name, svc) in services {
        let image = svc["image"].as_str().unwrap_or_else(|| panic!("{name:?} has an image"));
        let (_, tag) = image.rsplit_once(':').unwrap_or_else(|| panic!("{image} has a tag"));
        assert!(tag != "latest" && tag.chars().next().unwrap().is_ascii_digit(), "{image} is pinned to a version");
    }
    let pg = &c["services"]["postgres"];
    assert!(pg["image"].as_str().unwrap().starts_with("postgres:15."), "{pg:?}");
    // Checkpoints (whose start stalls commits) are spaced out.
    let args = strs(&pg["command"]);
    assert_eq!(args[0], "postgres");
    assert!(args.iter().any(|a| a == "checkpoint_timeout=15min"), "{args:?}");
    let volumes = strs(&pg["volumes"]);
    assert!(volumes.iter().any(|v| v.starts_with("pgdata:")), "{volumes:?}");
    assert!(c["volumes"]["pgdata"].is_null() || c["volumes"]["pgdata"].is_mapping());
    assert_eq!(pg["environment"]["POSTGRES_PASSWORD_FILE"], "/run/secrets/postgres_password");
}

#[test]
fn gateway_and_daemon_are_the_same_image_in_two_roles() {
    let c = compose();
    let (g, d) = (&c["services"]["gateway"], &c["services"]["daemon"]);
    assert_eq!(g["image"], d["image"]);
    let gc = strs(&g["command"]);
    let dc = strs(&d["command"]);
    assert_eq!(&gc[..3], ["serve", "--role", "gateway"]);
    assert_eq!(&dc[..3], ["serve", "--role", "daemon"]);
    // The listen addresses parse, and the gateway's port is published.
    let port = gc[gc.iter().position(|a| a == "--listen").unwrap() + 1].rsplit_once(':').unwrap().1.to_string();
    assert!(strs(&g["ports"]).iter().any(|p| p.ends_with(&format!(":{port}"))));
    for svc in [g, d] {
        assert_eq!(svc["depends_on"]["postgres"]["condition"], "service_healthy");
    }
}

#[test]
fn secrets_come_from_files_and_the_mounted_config_is_valid() {
    let c = compose();
    for (name, svc) in c["services"].as_mapping().unwrap() {
        for secret in strs(&svc["secrets"]) {
            let file = c["secrets"][secret.as_str()]["file"]
                .as_str()
                .unwrap_or_else(|| panic!("{name:?}: secret {secret} comes from a file"));
            assert!(file.starts_with("./secrets/"), "{file}");
        }
        // No secret value is written into the compose file.
        if let Some(env) = svc["environment"].as_mapping() {
            for (k, v) in env {
                let k = k.as_str().unwrap();
                if k.contains("PASSWORD")
                    || k.contains("TOKEN")
                    || k.contains("KEY")
                    || k.contains("SECRET")
                    || k == "DATABASE_URL"
                {
                    let v = v.as_str().unwrap();
                    let name = v.strip_prefix("file:///run/secrets/").or_else(|| v.strip_prefix("/run/secrets/"));
                    let name = name.unwrap_or_else(|| panic!("{k}={v} is not read from a secret file"));
                    assert!(
                        strs(&svc["secrets"]).iter().any(|s| s == name),
                        "{name:?}: {k} names a secret the service does not mount"
                    );
                }
            }
        }
    }
    for svc in ["gateway", "daemon"] {
        let s = &c["services"][svc];
        let config_path = s["environment"]["PINCER_CONFIG"].as_str().unwrap();
        let mount = strs(&s["volumes"])
            .into_iter()
            .find(|v| config_path.starts_with(v.split(':').nth(1).unwrap()))
            .expect("the config is mounted");
        let host_dir = mount.split(':').next().unwrap().trim_start_matches("./");
        let file = config_path.rsplit_once('/').unwrap().1;
        let host_path = root().join(host_dir).join(file);
        pincer::config::Config::load(&host_path)
            .unwrap_or_else(|e| panic!("{svc} mounts a config that fails its check: {e}"));
    }
    assert!(exists("Dockerfile"));
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
    assert!(!dockerfile.contains(":latest"));
}
