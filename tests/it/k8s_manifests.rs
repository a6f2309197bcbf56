//! The shipped Kubernetes manifests (`examples/kubernetes`): valid API objects, a
//! ClusterRole that grants exactly the requests salve sends, and the two-replica variant's
//! spread, disruption budget and URL from a Secret.

use crate::support::{repo_dir, s};
use serde_json::Value;

/// Each YAML document of `examples/kubernetes` as JSON, with its file name.
fn manifests() -> Vec<(String, Value)> {
    manifests_in("examples/kubernetes")
}

fn manifests_in(folder: &str) -> Vec<(String, Value)> {
    let dir = repo_dir().join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        documents.extend(docs.into_iter().map(|d| (name.clone(), d)));
    }
    documents
}

/// Reads `manifest` as the Kubernetes type `K` and back: a field the API does not
/// know (a typo) would be dropped on the way and show as a difference.
fn round_trip<K: serde::de::DeserializeOwned + serde::Serialize>(what: &str, manifest: &Value) {
    let typed: K = serde_json::from_value(manifest.clone())
        .unwrap_or_else(|e| panic!("{what} is not a valid object of its kind: {e}"));
    let back = serde_json::to_value(&typed).unwrap_or_default();
    assert_eq!(
        &back, manifest,
        "{what}: fields lost reading it as its type"
    );
}

#[test]
fn the_shipped_kubernetes_manifests_are_valid_api_objects() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{
        ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount,
    };
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let documents = manifests();
    let mut kinds: Vec<String> = Vec::new();
    for (file, doc) in &documents {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let what = format!("{file}: {kind} {}", doc["metadata"]["name"]);
        match kind.as_str() {
            "Namespace" => round_trip::<Namespace>(&what, doc),
            "ServiceAccount" => round_trip::<ServiceAccount>(&what, doc),
            "ClusterRole" => round_trip::<ClusterRole>(&what, doc),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(&what, doc),
            "ConfigMap" => round_trip::<ConfigMap>(&what, doc),
            "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(&what, doc),
            "Deployment" => round_trip::<Deployment>(&what, doc),
            "Service" => round_trip::<Service>(&what, doc),
            "NetworkPolicy" => round_trip::<NetworkPolicy>(&what, doc),
            other => panic!("{what}: no check for kind {other:?}"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Service",
            "ServiceAccount"
        ]
    );

    let find = |kind: &str, name: &str| -> &Value {
        documents
            .iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    // What salve's pod promises: probes on its health endpoints, limits, no root, no writes
    // outside its data volume.
    let pod = &find("Deployment", "salve")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(container["resources"]["limits"]["memory"].is_string());

    // The rules ConfigMap carries the rules of rules/, byte for byte.
    let rules = find("ConfigMap", "salve-rules")["data"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rules.len(), 3);
    for (name, text) in &rules {
        let file = repo_dir().join("rules").join(name);
        let on_disk =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            text.as_str(),
            Some(on_disk.as_str()),
            "{name} differs from rules/{name}"
        );
    }

    // The salve.toml of the ConfigMap is a valid configuration.
    std::env::set_var(
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.invalid/services/T0/B0/x",
    );
    let toml = find("ConfigMap", "salve-config")["data"]["salve.toml"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The API token: salve reads it from the Secret mounted where the config says, and
    // Alertmanager's receiver sends it.
    let token_file = "/etc/salve/token/token";
    assert!(
        toml.contains(&format!("bearer_token_file = \"{token_file}\"")),
        "{toml}"
    );
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == "/etc/salve/token")
        .unwrap_or_else(|| panic!("nothing is mounted at /etc/salve/token"));
    let volume = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
    assert_eq!(volume["secret"]["secretName"], "salve-api-token");
    let receiver =
        std::fs::read_to_string(repo_dir().join("examples/kubernetes/alertmanager-receiver.yml"))
            .expect("read the receiver");
    assert!(
        receiver.contains("credentials_file: /etc/alertmanager/secrets/salve-api-token/token"),
        "{receiver}"
    );
    let token = tempfile::NamedTempFile::new().expect("a token file");
    std::fs::write(token.path(), "s3cret\n").expect("write the token");
    let toml = toml.replace(token_file, &token.path().display().to_string());
    let config = salve::config::Config::parse(&toml, std::path::Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.kubernetes.max_replicas, Some(20));
    assert!(config.auth.is_some(), "the API is locked");

    // Only Alertmanager and Prometheus reach salve's port.
    let policy = &find("NetworkPolicy", "salve")["spec"];
    assert_eq!(
        policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "salve"
    );
    assert_eq!(policy["policyTypes"], serde_json::json!(["Ingress"]));
    let ingress = policy["ingress"].as_array().cloned().unwrap_or_default();
    assert_eq!(ingress.len(), 1);
    let peers: Vec<String> = ingress[0]["from"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| s(&p["podSelector"]["matchLabels"]["app.kubernetes.io/name"]))
        .collect();
    assert_eq!(peers, ["alertmanager", "prometheus"]);
    assert_eq!(
        ingress[0]["ports"],
        serde_json::json!([{ "protocol": "TCP", "port": 9095 }])
    );
}

/// Every verb the ClusterRole grants is one an action uses, and each action's requests
/// are allowed: least privilege, checked against the requests the tests above assert.
#[test]
fn the_cluster_role_grants_exactly_the_requests_salve_sends() {
    let documents = manifests();
    let role = documents
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap_or_else(|| panic!("no ClusterRole"));
    let mut granted: Vec<String> = Vec::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for group in rule["apiGroups"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    granted.push(format!(
                        "{}/{} {}",
                        group.as_str().unwrap_or_default(),
                        resource.as_str().unwrap_or_default(),
                        verb.as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    granted.sort();
    let used = [
        "/pods get",                      // restart of a pod: waiting for it to go
        "/pods/eviction create",          // restart of a pod
        "apps/controllerrevisions list",  // rollback of statefulsets and daemonsets
        "apps/daemonsets get",            // restart, rollback, verification
        "apps/daemonsets patch",          // restart, rollback
        "apps/deployments get",           // restart, rollback, verification
        "apps/deployments patch",         // restart, rollback
        "apps/deployments/scale get",     // scale
        "apps/deployments/scale update",  // scale
        "apps/replicasets list",          // rollback
        "apps/statefulsets get",          // restart, rollback, verification
        "apps/statefulsets patch",        // restart, rollback
        "apps/statefulsets/scale get",    // scale
        "apps/statefulsets/scale update", // scale
    ];
    assert_eq!(granted, used);
}

#[test]
fn the_two_replica_variant_spreads_its_pods_keeps_one_through_a_drain_and_reads_the_url_from_a_secret(
) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let documents = manifests_in("examples/kubernetes/replicas");
    let find = |kind: &str| -> &Value {
        documents
            .iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    round_trip::<Deployment>("replicas/deployment.yaml", find("Deployment"));
    round_trip::<PodDisruptionBudget>("replicas/pdb.yaml", find("PodDisruptionBudget"));
    round_trip::<ConfigMap>("replicas/config.yaml", find("ConfigMap"));
    assert_eq!(documents.len(), 3);

    let deployment = &find("Deployment")["spec"];
    assert_eq!(deployment["replicas"], 2);
    let pod = &deployment["template"]["spec"];
    let spread =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        spread["labelSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "salve"
    );
    assert_eq!(find("PodDisruptionBudget")["spec"]["minAvailable"], 1);
    // No volume is shared between the replicas.
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    assert!(volumes.iter().all(|v| v["persistentVolumeClaim"].is_null()));

    let container = &pod["containers"][0];
    let url = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "SALVE_POSTGRES_URL")
        .unwrap_or_else(|| panic!("no SALVE_POSTGRES_URL in the pod"));
    assert_eq!(url["valueFrom"]["secretKeyRef"]["name"], "salve-postgres");
    let toml = find("ConfigMap")["data"]["salve.toml"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!toml.contains("postgres://"), "{toml}");
    let token = tempfile::NamedTempFile::new().expect("a token file");
    std::fs::write(token.path(), "s3cret\n").expect("write the token");
    let toml = toml.replace(
        "/etc/salve/token/token",
        &token.path().display().to_string(),
    );
    std::env::set_var(
        "SALVE_POSTGRES_URL",
        " postgres://salve:pw@postgres.db.svc:5432/salve\n",
    );
    std::env::set_var(
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.invalid/services/T0/B0/x",
    );
    let config = salve::config::Config::parse(&toml, std::path::Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let store = config.store.expect("[store]");
    assert_eq!(
        store.url.expose(),
        "postgres://salve:pw@postgres.db.svc:5432/salve"
    );
    assert_eq!(store.takeover_after, std::time::Duration::from_secs(10));
}
