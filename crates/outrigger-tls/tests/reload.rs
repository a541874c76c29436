//! Hot reload over real TLS handshakes: a rotated certificate is served to new connections, and a
//! half-written file keeps the previous certificate in service and is counted as an error.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outrigger_test_support::Pki;
use outrigger_tls::{Reload, server_config, watch};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// Serves TLS handshakes on a loopback port until dropped.
async fn tls_server(
    config: Arc<rustls::ServerConfig>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    use tokio::io::AsyncWriteExt as _;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, task)
}

/// The leaf certificate a fresh handshake is served.
async fn served(pki: &Pki, addr: std::net::SocketAddr) -> CertificateDer<'static> {
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn on_disk(pki: &Pki) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(pki.path("server.pem")).unwrap()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_new_certificate_and_keeps_old_on_bad_files() {
    let pki = Pki::new();
    pki.write_leaf("server", "gen-1");
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let (config, store) = server_config(&cert, &key, None).unwrap();
    let reloads = Arc::new(Mutex::new(Vec::new()));
    let seen = reloads.clone();
    let watcher = tokio::spawn(watch(
        cert.clone(),
        key,
        store,
        Duration::from_millis(50),
        move |r| seen.lock().unwrap().push(r),
    ));
    let (addr, server) = tls_server(config).await;
    let first = on_disk(&pki);
    assert_eq!(served(&pki, addr).await, first);

    pki.write_leaf("server", "gen-2");
    let second = on_disk(&pki);
    assert_ne!(first, second);
    wait_for("a successful reload", || {
        reloads.lock().unwrap().contains(&Reload::Success)
    })
    .await;
    assert_eq!(served(&pki, addr).await, second);

    // A half-written certificate swapped in (as a non-atomic writer would leave it) must not
    // replace the good pair. The rotation above renames cert and key one after the other, so a
    // tick may have seen the new cert with the old key: count errors from here on.
    let count = |want: Reload| {
        reloads
            .lock()
            .unwrap()
            .iter()
            .filter(|x| **x == want)
            .count()
    };
    let (errors, successes) = (count(Reload::Error), count(Reload::Success));
    let (pem, _) = pki.leaf("gen-3");
    let tmp = pki.path(".partial.pem");
    std::fs::write(&tmp, &pem[..pem.len() / 2]).unwrap();
    std::fs::rename(&tmp, &cert).unwrap();
    wait_for("a failed reload", || count(Reload::Error) > errors).await;
    assert_eq!(served(&pki, addr).await, second);
    assert_eq!(
        count(Reload::Success),
        successes,
        "the bad file was not counted as a success"
    );
    watcher.abort();
    server.abort();
}

#[test]
fn mismatched_or_empty_files_are_refused_up_front() {
    let pki = Pki::new();
    pki.write_leaf("a", "a");
    pki.write_leaf("b", "b");
    let err = server_config(&pki.path("a.pem"), &pki.path("b.key"), None).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    std::fs::write(pki.path("empty.pem"), "").unwrap();
    let err = server_config(&pki.path("empty.pem"), &pki.path("a.key"), None).unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");
}
