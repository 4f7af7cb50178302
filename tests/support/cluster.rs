//! A real control plane on loopback: etcd and kube-apiserver built from their Go modules,
//! token auth with RBAC, our CRDs and the OpenShift CRDs installed. One per test binary,
//! shared by its tests; each test gets its own `kube::Client`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::registry::TestCa;
use super::{Guarded, free_port, require, wait_until};

/// The admin token (group system:masters).
pub const ADMIN_TOKEN: &str = "imageset-test-admin-token";
/// A tenant's token (no groups beyond system:authenticated; RBAC decides).
pub const TENANT_TOKEN: &str = "imageset-test-tenant-token";
/// The tenant's user name.
pub const TENANT_USER: &str = "tenant";

/// A running control plane.
pub struct ControlPlane {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The CA that signed the serving certificate.
    pub ca_pem: String,
    /// A kubeconfig file for the admin.
    pub kubeconfig: PathBuf,
    /// A kubeconfig file for the tenant user.
    pub tenant_kubeconfig: PathBuf,
    _etcd: Guarded,
    _apiserver: Guarded,
    _dir: PathBuf,
}

static SHARED: OnceLock<ControlPlane> = OnceLock::new();

/// The control plane of this test binary, started on first use.
pub fn shared() -> &'static ControlPlane {
    // Started on a plain thread: tests call this from inside their async runtime.
    SHARED.get_or_init(|| std::thread::spawn(ControlPlane::start).join().expect("control plane started"))
}

fn kubeconfig_text(url: &str, ca_pem: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {user}\n    namespace: default\ncurrent-context: test\n"
    )
}

impl ControlPlane {
    fn start() -> ControlPlane {
        let etcd_bin = require("etcd");
        let apiserver_bin = require("kube-apiserver");
        // Lives until the processes stop: the watchdog of etcd removes it.
        let dir = super::temp_dir("control-plane-").keep();
        let (client_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Guarded::spawn(
            &etcd_bin,
            &[
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
            &dir.join("etcd.log"),
            Some(&dir),
        );
        let http = reqwest::blocking::Client::new();
        let etcd_tail = etcd.log_tail();
        wait_until(
            "etcd",
            Duration::from_secs(30),
            || {
                etcd.alive()
                    && http.get(format!("{etcd_url}/health")).send().map(|r| r.status().is_success()).unwrap_or(false)
            },
            etcd_tail,
        );

        let ca = TestCa::generate();
        let write = |name: &str, text: &str| -> String {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let cert = write("apiserver.crt", &ca.cert_pem);
        let key = write("apiserver.key", &ca.key_pem);
        let sa = rcgen::KeyPair::generate().expect("sa key");
        let sa_key = write("sa.key", &sa.serialize_pem());
        let sa_pub = write("sa.pub", &sa.public_key_pem());
        let tokens = write(
            "tokens.csv",
            &format!("{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n{TENANT_TOKEN},{TENANT_USER},tenant-uid\n"),
        );
        let url = format!("https://127.0.0.1:{api_port}");
        let mut apiserver = Guarded::spawn(
            &apiserver_bin,
            &[
                format!("--etcd-servers={etcd_url}"),
                format!("--secure-port={api_port}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--tls-cert-file={cert}"),
                format!("--tls-private-key-file={key}"),
                format!("--token-auth-file={tokens}"),
                "--authorization-mode=RBAC".into(),
                format!("--service-account-key-file={sa_pub}"),
                format!("--service-account-signing-key-file={sa_key}"),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                "--enable-priority-and-fairness=false".into(),
                "--endpoint-reconciler-type=none".into(),
                format!("--cert-dir={}", dir.join("certs").display()),
                "--v=0".into(),
            ],
            &dir.join("kube-apiserver.log"),
            None,
        );
        let admin = reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).unwrap()])
            .build()
            .unwrap();
        let apiserver_tail = apiserver.log_tail();
        wait_until(
            "kube-apiserver",
            Duration::from_secs(90),
            || {
                apiserver.alive()
                    && admin
                        .get(format!("{url}/readyz"))
                        .bearer_auth(ADMIN_TOKEN)
                        .send()
                        .map(|r| r.status().is_success())
                        .unwrap_or(false)
            },
            apiserver_tail,
        );
        let kubeconfig =
            PathBuf::from(write("admin.kubeconfig", &kubeconfig_text(&url, &ca.ca_pem, "admin", ADMIN_TOKEN)));
        let tenant_kubeconfig =
            PathBuf::from(write("tenant.kubeconfig", &kubeconfig_text(&url, &ca.ca_pem, TENANT_USER, TENANT_TOKEN)));
        let cp = ControlPlane {
            url,
            ca_pem: ca.ca_pem,
            kubeconfig,
            tenant_kubeconfig,
            _etcd: etcd,
            _apiserver: apiserver,
            _dir: dir,
        };
        // The CRDs go in on a runtime of their own; tests use theirs.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = client_for(&cp.kubeconfig).await;
            install_crds(&client).await;
        });
        cp
    }

    /// A client acting as cluster admin.
    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig).await
    }

    /// A client acting as the unprivileged tenant user.
    pub async fn tenant_client(&self) -> kube::Client {
        client_for(&self.tenant_kubeconfig).await
    }
}

async fn client_for(path: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kubeconfig");
    kube::Client::try_from(config).expect("kube client")
}

/// Every CRD the tests need: ours (from `crds/`) and the OpenShift ones from the shared data.
pub fn crd_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("crds/crds.yaml")];
    let shared = super::shared_data().join("crds");
    let mut extra: Vec<PathBuf> = std::fs::read_dir(&shared)
        .unwrap_or_else(|e| panic!("{}: {e}", shared.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    extra.sort();
    files.extend(extra);
    files
}

async fn install_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in crd_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in text.split("\n---").map(str::trim).filter(|d| !d.is_empty() && *d != "---") {
            let doc = doc.trim_start_matches("---").trim();
            if doc.is_empty() {
                continue;
            }
            let crd: CustomResourceDefinition =
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let name = crd.metadata.name.clone().expect("crd name");
            api.patch(&name, &PatchParams::apply("imageset-operator-tests").force(), &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("install CRD {name} from {}: {e}", file.display()));
            names.push(name);
        }
    }
    for name in names {
        let cond = kube::runtime::wait::conditions::is_crd_established();
        tokio::time::timeout(Duration::from_secs(30), kube::runtime::wait::await_condition(api.clone(), &name, cond))
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not established"))
            .expect("watch CRD");
    }
}

/// Creates a namespace unless it exists.
pub async fn ensure_namespace(client: &kube::Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    match api.create(&kube::api::PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}
