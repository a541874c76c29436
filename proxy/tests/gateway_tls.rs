//! HTTPS listeners with real TLS handshakes: the certificate chosen by SNI (exact hostname, then
//! the longest wildcard, then the listener without a hostname), swapped by a table update
//! without a restart, and requests served over HTTP/2 chosen by ALPN.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use common::gateway::{Gateway, TO_SVC, backend};
use common::{App, Pki, free_port};

/// Accepts any certificate: the test compares the served leaf itself.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client() -> tokio_rustls::TlsConnector {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCert))
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn handshake(port: u16, sni: &str) -> (Tls, CertificateDer<'static>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let tls = client().connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (tls, leaf)
}

fn listener(name: &str, host: Option<&str>, pki: &Pki, pair: &str) -> String {
    let host = host.map_or("null".to_owned(), |h| format!("\"{h}\""));
    format!(
        r#"{{"name":"{name}","hostname":{host},"certificates":[{{"cert":"{}","key":"{}"}}],
            "virtualHosts":[{{"rules":{TO_SVC}}}]}}"#,
        pki.path(&format!("{pair}.pem")).display(),
        pki.path(&format!("{pair}.key")).display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_chosen_by_sni_and_swapped_with_the_table() {
    let pki = Pki::new();
    for pair in ["exact", "wild", "default", "renewed"] {
        pki.write_leaf(pair, pair);
    }
    let leaf =
        |pair: &str| CertificateDer::from_pem_file(pki.path(&format!("{pair}.pem"))).unwrap();
    let app = App::start().await;
    let port = free_port();
    let json = |exact_pair: &str| {
        format!(
            r#"{{"ports":[{{"port":{port},"protocol":"HTTPS","listeners":[{},{},{}]}}],"backends":{}}}"#,
            listener("exact", Some("a.example.com"), &pki, exact_pair),
            listener("wild", Some("*.example.com"), &pki, "wild"),
            listener("default", None, &pki, "default"),
            backend(&[app.addr])
        )
    };
    let gw = Gateway::start(&json("exact"), &[]).await;
    for (sni, want) in [
        ("a.example.com", "exact"),
        ("b.example.com", "wild"),
        ("other.test", "default"),
        ("127.0.0.1", "default"),
    ] {
        let (_, served) = handshake(port, sni).await;
        assert!(
            served == leaf(want),
            "{sni} did not get the {want} certificate"
        );
    }

    // HTTP/2 by ALPN over the chosen listener.
    let (tls, _) = handshake(port, "a.example.com").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://a.example.com/headers")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("x-forwarded-proto: https"), "{body}");
    assert!(body.contains("host: a.example.com"), "{body}");

    gw.publish(&json("renewed"));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_, served) = handshake(port, "a.example.com").await;
    assert!(
        served == leaf("renewed"),
        "the renewed certificate is not served"
    );
}
